-- Exported students, mapped to the columns every patron type shares.
-- materialized: view   (read only by patrons; not worth storing)
WITH s AS (
    SELECT
        v.*,
        coalesce(nullif(v.OFFICE_PHONE, ''), nullif(v.TERM_PHONE1, ''), nullif(v.TERM_PHONE2, ''))
            AS preferred_phone
    FROM student_verdicts v
    WHERE v.rejection_reason IS NULL
)
SELECT
    'student' AS patron_type,
    s.KRB_NAME_UPPERCASE || '@MIT.EDU' AS primary_id,
    coalesce(strip_text(s.LEGAL_FIRST_NAME), '') AS first_name,
    coalesce(strip_text(s.LEGAL_MIDDLE_NAME), '') AS middle_name,
    coalesce(strip_text(s.LEGAL_LAST_NAME), '') AS last_name,
    NULL AS gender,
    coded(
        CASE
            WHEN s.HOME_DEPARTMENT IN ('NIU', 'NIV', 'NIW', 'NIT', 'NIR', 'NIH') THEN '54'
            WHEN upper(s.STUDENT_YEAR) IN ('1', '2', '3', '4', 'U') THEN '31'
            WHEN upper(s.STUDENT_YEAR) = 'G' THEN '32'
            ELSE ''
        END,
        NULL
    ) AS user_group,
    {
        'line1': coalesce(nullif(s.TERM_STREET1, ''), 'NO ADDRESS ON FILE IN DATA WAREHOUSE'),
        'line3': coalesce(s.TERM_STREET2, ''),
        'city': coalesce(s.TERM_CITY, ''),
        'state_province': coalesce(s.TERM_STATE, ''),
        'postal_code': coalesce(s.TERM_ZIP, '')
    } AS address,
    nullif(s.EMAIL_ADDRESS, '') AS email_address,
    list_concat(
        CASE
            WHEN s.preferred_phone IS NULL THEN []
            ELSE [phone(s.preferred_phone, 'true', 'office', 'Office')]
        END,
        CASE
            WHEN coalesce(s.OFFICE_PHONE, '') = '' OR coalesce(s.TERM_PHONE1, '') = '' THEN []
            ELSE [phone(s.TERM_PHONE1, 'false', 'home', 'Home')]
        END
    ) AS phones,
    preferred_name(s.PREFERRED_FIRST_NAME, s.LEGAL_FIRST_NAME) AS pref_first_name,
    preferred_name(s.PREFERRED_MIDDLE_NAME, s.LEGAL_MIDDLE_NAME) AS pref_middle_name,
    preferred_name(s.PREFERRED_LAST_NAME, s.LEGAL_LAST_NAME) AS pref_last_name,
    NULL AS is_researcher,
    coalesce(s.MIT_ID, '') AS mit_id,
    CASE WHEN coalesce(s.LIBRARY_ID, '') NOT IN ('', 'NONE') THEN s.LIBRARY_ID END AS barcode,
    coded(coalesce(d.statistic_category, 'ZZ'), '') AS statistic_category
FROM s
LEFT JOIN student_departments d ON d.home_department = s.HOME_DEPARTMENT
