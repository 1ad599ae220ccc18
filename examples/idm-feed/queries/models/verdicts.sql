-- Every line of the feed with its verdict: rejection_reason is NULL for a line
-- that is exported, otherwise the first rule that excludes it, in this order
-- (sentences in queries/seeds/rejection_reasons.csv):
--   malformed_line                 the line, or a value in it, could not be read
--   missing_primary_id             no net ID
--   missing_unique_id              no unique ID (Alma matches accounts on it)
--   affiliate_only                 no faculty, staff or student affiliation, but affiliate
--   no_eligible_affiliation        no faculty, staff or student affiliation at all
--   partner_campus_not_on_campus   primary affiliation student, at a partner campus,
--                                  on-main-campus flag 0 (or empty)
--   duplicate_in_source            another kept line has the same UNIQUE_ID or net ID
--
-- Dedupe order, stated: among the lines that pass every other rule, one line per
-- UNIQUE_ID is kept, then one per primary id among those: the line with the highest
-- affiliation (faculty, staff, student), then the latest END_DATE (no end date counts
-- as latest), then the smallest UNIQUE_ID, NET_ID, names, EMAIL, PHONE and so on through
-- every column, then the earlier line: the choice never depends on the order of the file
-- unless two lines are identical.
WITH judged AS (
    SELECT
        r.*,
        CASE
            WHEN r.PARSE_ERROR IS NOT NULL THEN 'malformed_line'
            WHEN r.primary_id IS NULL THEN 'missing_primary_id'
            WHEN is_blank(r.UNIQUE_ID) THEN 'missing_unique_id'
            WHEN r.best_affiliation IS NULL AND list_contains(r.affiliation_list, 'affiliate')
                THEN 'affiliate_only'
            WHEN r.best_affiliation IS NULL THEN 'no_eligible_affiliation'
            WHEN r.primary_affiliation_code = 'student'
                AND NOT is_blank(r.PARTNER_CAMPUS)
                AND coalesce(r.ON_MAIN_CAMPUS, 0) = 0
                THEN 'partner_campus_not_on_campus'
        END AS rule_reason
    FROM classified_lines r
),
by_unique_id AS (
    SELECT
        j.*,
        row_number() OVER (
            PARTITION BY j.rule_reason IS NULL, strip_text(j.UNIQUE_ID)
            ORDER BY
                j.best_rank NULLS LAST, j.END_DATE DESC NULLS FIRST,
                j.UNIQUE_ID NULLS LAST, j.NET_ID NULLS LAST,
                j.LEGAL_LAST_NAME NULLS LAST, j.LEGAL_FIRST_NAME NULLS LAST,
                j.PREFERRED_LAST_NAME NULLS LAST, j.PREFERRED_FIRST_NAME NULLS LAST,
                j.EMAIL NULLS LAST, j.PHONE NULLS LAST,
                j.PRIMARY_AFFILIATION NULLS LAST, j.AFFILIATIONS NULLS LAST,
                j.PARTNER_CAMPUS NULLS LAST, j.ON_MAIN_CAMPUS NULLS LAST,
                j.DEPARTMENT NULLS LAST, j.LINE_NUMBER NULLS LAST
        ) AS unique_id_rank
    FROM judged j
),
by_primary_id AS (
    SELECT
        b.*,
        row_number() OVER (
            PARTITION BY b.rule_reason IS NULL AND b.unique_id_rank = 1, b.primary_id
            ORDER BY
                b.best_rank NULLS LAST, b.END_DATE DESC NULLS FIRST,
                b.UNIQUE_ID NULLS LAST, b.NET_ID NULLS LAST,
                b.LEGAL_LAST_NAME NULLS LAST, b.LEGAL_FIRST_NAME NULLS LAST,
                b.PREFERRED_LAST_NAME NULLS LAST, b.PREFERRED_FIRST_NAME NULLS LAST,
                b.EMAIL NULLS LAST, b.PHONE NULLS LAST,
                b.PRIMARY_AFFILIATION NULLS LAST, b.AFFILIATIONS NULLS LAST,
                b.PARTNER_CAMPUS NULLS LAST, b.ON_MAIN_CAMPUS NULLS LAST,
                b.DEPARTMENT NULLS LAST, b.LINE_NUMBER NULLS LAST
        ) AS primary_id_rank
    FROM by_unique_id b
)
SELECT
    p.* EXCLUDE (rule_reason, unique_id_rank, primary_id_rank),
    CASE
        WHEN p.rule_reason IS NOT NULL THEN p.rule_reason
        WHEN p.unique_id_rank > 1 OR p.primary_id_rank > 1 THEN 'duplicate_in_source'
    END AS rejection_reason
FROM by_primary_id p
