-- Every extracted row, with what `patronload explain` needs to find and judge the
-- person: the primary id it forms (record_key, NULL when none can be formed), the
-- rejection reason (NULL when exported), the identifiers people search by
-- (lower-cased), a name to show, and the raw source row as JSON.
WITH source_rows AS (
    SELECT
        'staff' AS patron_type, v.rejection_reason, v.KRB_NAME_UPPERCASE, v.MIT_ID,
        v.LIBRARY_ID, v.EMAIL_ADDRESS, v.LEGAL_FIRST_NAME, v.LEGAL_LAST_NAME,
        v.PREFERRED_FIRST_NAME, v.PREFERRED_LAST_NAME, to_json(v)::VARCHAR AS raw
    FROM staff_verdicts v
    UNION ALL
    SELECT
        'student' AS patron_type, v.rejection_reason, v.KRB_NAME_UPPERCASE, v.MIT_ID,
        v.LIBRARY_ID, v.EMAIL_ADDRESS, v.LEGAL_FIRST_NAME, v.LEGAL_LAST_NAME,
        v.PREFERRED_FIRST_NAME, v.PREFERRED_LAST_NAME, to_json(v)::VARCHAR AS raw
    FROM student_verdicts v
)
SELECT
    s.patron_type,
    s.patron_type AS source,
    CASE WHEN NOT is_blank(s.KRB_NAME_UPPERCASE) THEN s.KRB_NAME_UPPERCASE || '@MIT.EDU' END
        AS record_key,
    s.rejection_reason AS reason,
    list_filter(
        [
            lower(s.KRB_NAME_UPPERCASE || '@MIT.EDU'), lower(s.KRB_NAME_UPPERCASE),
            lower(s.MIT_ID), lower(s.LIBRARY_ID), lower(s.EMAIL_ADDRESS),
            lower(concat_ws(' ', strip_text(s.LEGAL_FIRST_NAME), strip_text(s.LEGAL_LAST_NAME))),
            lower(concat_ws(' ', strip_text(s.PREFERRED_FIRST_NAME), strip_text(s.PREFERRED_LAST_NAME)))
        ],
        lambda k: coalesce(k, '') <> ''
    ) AS search_keys,
    concat_ws(' ', strip_text(s.LEGAL_FIRST_NAME), strip_text(s.LEGAL_LAST_NAME)) AS display_name,
    s.raw
FROM source_rows s
