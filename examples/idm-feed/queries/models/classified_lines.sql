-- Every line of the feed, exactly once, with the values the rules read: the
-- primary id, the affiliations as a list, the highest eligible affiliation
-- (queries/seeds/affiliations.csv, lowest rank first) and the patron type it
-- leads to. The patron type is the file the line belongs to:
--   faculty_staff, student   the files Alma receives (from affiliations.csv);
--   ineligible               no affiliation that is loaded: no file;
--   unreadable               the line (or a value in it) could not be read: no file.
-- Row accounting counts lines per patron type here, so every line lands in one.
WITH f AS (
    SELECT
        u.*,
        primary_id_of(u.NET_ID) AS primary_id,
        lower(strip_text(u.PRIMARY_AFFILIATION)) AS primary_affiliation_code,
        affiliation_list(u.PRIMARY_AFFILIATION, u.AFFILIATIONS) AS affiliation_list
    FROM feed_lines u
),
best AS (
    SELECT
        f.*,
        (
            SELECT arg_min(a.affiliation, a.rank::INTEGER)
            FROM affiliations a
            WHERE list_contains(f.affiliation_list, a.affiliation)
        ) AS best_affiliation
    FROM f
)
SELECT
    b.*,
    a.rank::INTEGER AS best_rank,
    CASE
        WHEN b.PARSE_ERROR IS NOT NULL THEN 'unreadable'
        WHEN a.patron_type IS NULL THEN 'ineligible'
        ELSE a.patron_type
    END AS patron_type
FROM best b
LEFT JOIN affiliations a ON a.affiliation = b.best_affiliation
