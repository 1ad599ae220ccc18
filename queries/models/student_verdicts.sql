-- Every extracted student row with its verdict (NULL = exported).
--
-- Staff are decided first: a student whose Kerberos name is exported as staff
-- is not exported again (student employees load once, as staff).
-- Dedupe order among the remaining rows of one Kerberos name: smallest MIT_ID,
-- then LIBRARY_ID, EMAIL_ADDRESS and so on through every column.
WITH exported_staff AS (
    SELECT v.KRB_NAME_UPPERCASE
    FROM staff_verdicts v
    WHERE v.rejection_reason IS NULL
),
ranked AS (
    SELECT
        s.*,
        is_blank(s.KRB_NAME_UPPERCASE) AS no_krb,
        s.KRB_NAME_UPPERCASE IN (SELECT e.KRB_NAME_UPPERCASE FROM exported_staff e) AS is_staff,
        row_number() OVER (
            PARTITION BY s.KRB_NAME_UPPERCASE
            ORDER BY
                s.MIT_ID NULLS LAST, s.LIBRARY_ID NULLS LAST, s.EMAIL_ADDRESS NULLS LAST,
                s.LEGAL_LAST_NAME NULLS LAST, s.LEGAL_FIRST_NAME NULLS LAST,
                s.LEGAL_MIDDLE_NAME NULLS LAST, s.PREFERRED_FIRST_NAME NULLS LAST,
                s.PREFERRED_MIDDLE_NAME NULLS LAST, s.PREFERRED_LAST_NAME NULLS LAST,
                s.TERM_STREET1 NULLS LAST, s.TERM_STREET2 NULLS LAST, s.TERM_CITY NULLS LAST,
                s.TERM_STATE NULLS LAST, s.TERM_ZIP NULLS LAST, s.TERM_PHONE1 NULLS LAST,
                s.TERM_PHONE2 NULLS LAST, s.OFFICE_PHONE NULLS LAST,
                s.STUDENT_YEAR NULLS LAST, s.HOME_DEPARTMENT NULLS LAST
        ) AS krb_rank
    FROM student s
)
SELECT
    r.* EXCLUDE (no_krb, is_staff, krb_rank),
    CASE
        WHEN r.no_krb THEN 'missing_primary_id'
        WHEN r.is_staff THEN 'student_is_staff'
        WHEN r.krb_rank > 1 THEN 'duplicate_in_source'
    END AS rejection_reason
FROM ranked r
