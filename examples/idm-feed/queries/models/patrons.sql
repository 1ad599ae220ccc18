-- Exported people, mapped to the values of their record.
-- materialized: view   (read only by users; not worth storing)
--
-- User group and patron type come from the highest affiliation (faculty before
-- staff before student, queries/seeds/affiliations.csv). Expiry is the feed's
-- END_DATE when there is one, else the run date plus that affiliation's
-- default_expiry_months; the purge date is two years after the expiry.
SELECT
    v.patron_type,
    v.primary_id,
    strip_text(v.UNIQUE_ID) AS unique_id,
    coalesce(strip_text(v.LEGAL_FIRST_NAME), '') AS first_name,
    coalesce(strip_text(v.LEGAL_LAST_NAME), '') AS last_name,
    preferred_name(v.PREFERRED_FIRST_NAME, v.LEGAL_FIRST_NAME) AS pref_first_name,
    preferred_name(v.PREFERRED_LAST_NAME, v.LEGAL_LAST_NAME) AS pref_last_name,
    coded(a.user_group, coalesce(g.description, '')) AS user_group,
    coalesce(v.END_DATE, r.as_of + to_months(a.default_expiry_months::INTEGER)) AS expiry,
    nullif(strip_text(v.EMAIL), '') AS email_address,
    nullif(strip_text(v.PHONE), '') AS phone_number,
    coded(
        coalesce(d.statistic_category, 'ZZ'),
        coalesce(nullif(strip_text(v.DEPARTMENT), ''), 'Unknown')
    ) AS statistic_category
FROM verdicts v
JOIN affiliations a ON a.affiliation = v.best_affiliation
LEFT JOIN user_groups g ON g.code = a.user_group
LEFT JOIN departments d ON lower(d.department) = lower(strip_text(v.DEPARTMENT))
CROSS JOIN run_context r
WHERE v.rejection_reason IS NULL
