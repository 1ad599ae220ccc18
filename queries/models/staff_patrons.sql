-- Exported staff, mapped to the columns every patron type shares.
-- materialized: view   (read only by patrons; not worth storing)
SELECT
    'staff' AS patron_type,
    v.KRB_NAME_UPPERCASE || '@MIT.EDU' AS primary_id,
    coalesce(strip_text(v.LEGAL_FIRST_NAME), '') AS first_name,
    coalesce(strip_text(v.LEGAL_MIDDLE_NAME), '') AS middle_name,
    coalesce(strip_text(v.LEGAL_LAST_NAME), '') AS last_name,
    coded('', '') AS gender,
    coded(coalesce(v.LIBRARY_PERSON_TYPE_CODE, ''), coalesce(v.LIBRARY_PERSON_TYPE, '')) AS user_group,
    {
        'line1': coalesce(nullif(v.OFFICE_ADDRESS, ''), 'NO ADDRESS ON FILE IN DATA WAREHOUSE'),
        'line3': 'MIT',
        'city': '',
        'state_province': '',
        'postal_code': '00000'
    } AS address,
    nullif(v.EMAIL_ADDRESS, '') AS email_address,
    CASE
        WHEN coalesce(v.OFFICE_PHONE, '') = '' THEN []
        ELSE [phone(v.OFFICE_PHONE, 'true', 'office', 'Office')]
    END AS phones,
    preferred_name(v.PREFERRED_FIRST_NAME, v.LEGAL_FIRST_NAME) AS pref_first_name,
    preferred_name(v.PREFERRED_MIDDLE_NAME, v.LEGAL_MIDDLE_NAME) AS pref_middle_name,
    preferred_name(v.PREFERRED_LAST_NAME, v.LEGAL_LAST_NAME) AS pref_last_name,
    'false' AS is_researcher,
    coalesce(v.MIT_ID, '') AS mit_id,
    CASE WHEN coalesce(v.LIBRARY_ID, '') NOT IN ('', 'NONE') THEN v.LIBRARY_ID END AS barcode,
    coded(
        coalesce(d.statistic_category, 'ZQ'),
        coalesce(nullif(v.ORG_UNIT_TITLE, ''), 'Unknown')
    ) AS statistic_category
FROM staff_verdicts v
LEFT JOIN staff_departments d ON d.org_unit_id = v.ORG_UNIT_ID
WHERE v.rejection_reason IS NULL
