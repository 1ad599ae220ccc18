-- Every extracted row that is not exported, with its reason code and the
-- fields people use to find the person.
WITH verdicts AS (
    SELECT 'staff' AS patron_type, * FROM staff_verdicts
    UNION ALL BY NAME
    SELECT 'student' AS patron_type, * FROM student_verdicts
)
SELECT
    v.patron_type,
    v.rejection_reason AS reason,
    v.KRB_NAME_UPPERCASE AS krb_name,
    v.MIT_ID AS mit_id,
    v.LIBRARY_ID AS library_id,
    v.EMAIL_ADDRESS AS email_address,
    v.LEGAL_FIRST_NAME AS first_name,
    v.LEGAL_LAST_NAME AS last_name
FROM verdicts v
WHERE v.rejection_reason IS NOT NULL
