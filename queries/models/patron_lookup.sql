-- Every extracted row, with what `patronload explain` needs to find and judge the
-- person: the primary id it forms (record_key, NULL when none can be formed), the
-- rejection reason (NULL when exported), the identifiers people search by
-- (lower-cased), a name to show, and the raw source row as JSON.
SELECT
    'staff' AS patron_type,
    'staff' AS source,
    CASE WHEN NOT is_blank(v.KRB_NAME_UPPERCASE) THEN v.KRB_NAME_UPPERCASE || '@MIT.EDU' END
        AS record_key,
    v.rejection_reason AS reason,
    list_filter(
        [
            lower(v.KRB_NAME_UPPERCASE || '@MIT.EDU'), lower(v.KRB_NAME_UPPERCASE),
            lower(v.MIT_ID), lower(v.LIBRARY_ID), lower(v.EMAIL_ADDRESS),
            lower(concat_ws(' ', strip_text(v.LEGAL_FIRST_NAME), strip_text(v.LEGAL_LAST_NAME))),
            lower(concat_ws(' ', strip_text(v.PREFERRED_FIRST_NAME), strip_text(v.PREFERRED_LAST_NAME)))
        ],
        lambda k: coalesce(k, '') <> ''
    ) AS search_keys,
    concat_ws(' ', strip_text(v.LEGAL_FIRST_NAME), strip_text(v.LEGAL_LAST_NAME)) AS display_name,
    to_json(v)::VARCHAR AS raw
FROM staff_verdicts v
UNION ALL
SELECT
    'student' AS patron_type,
    'student' AS source,
    CASE WHEN NOT is_blank(v.KRB_NAME_UPPERCASE) THEN v.KRB_NAME_UPPERCASE || '@MIT.EDU' END
        AS record_key,
    v.rejection_reason AS reason,
    list_filter(
        [
            lower(v.KRB_NAME_UPPERCASE || '@MIT.EDU'), lower(v.KRB_NAME_UPPERCASE),
            lower(v.MIT_ID), lower(v.LIBRARY_ID), lower(v.EMAIL_ADDRESS),
            lower(concat_ws(' ', strip_text(v.LEGAL_FIRST_NAME), strip_text(v.LEGAL_LAST_NAME))),
            lower(concat_ws(' ', strip_text(v.PREFERRED_FIRST_NAME), strip_text(v.PREFERRED_LAST_NAME)))
        ],
        lambda k: coalesce(k, '') <> ''
    ) AS search_keys,
    concat_ws(' ', strip_text(v.LEGAL_FIRST_NAME), strip_text(v.LEGAL_LAST_NAME)) AS display_name,
    to_json(v)::VARCHAR AS raw
FROM student_verdicts v
