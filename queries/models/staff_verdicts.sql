-- Every extracted staff row with its verdict: rejection_reason is NULL for the
-- row that is exported, otherwise the reason code (see seeds/rejection_reasons.csv).
--
-- Dedupe order, stated: when one Kerberos name appears on several staff rows,
-- the row kept is the one with the latest APPOINTMENT_END_DATE (no date last),
-- then the smallest MIT_ID, LIBRARY_ID, EMAIL_ADDRESS and so on through every
-- column, so the choice never depends on the order the warehouse returned.
WITH ranked AS (
    SELECT
        s.*,
        is_blank(s.KRB_NAME_UPPERCASE) AS no_krb,
        row_number() OVER (
            PARTITION BY s.KRB_NAME_UPPERCASE
            ORDER BY
                s.APPOINTMENT_END_DATE DESC NULLS LAST,
                s.MIT_ID NULLS LAST, s.LIBRARY_ID NULLS LAST, s.EMAIL_ADDRESS NULLS LAST,
                s.LEGAL_LAST_NAME NULLS LAST, s.LEGAL_FIRST_NAME NULLS LAST,
                s.LEGAL_MIDDLE_NAME NULLS LAST, s.PREFERRED_FIRST_NAME NULLS LAST,
                s.PREFERRED_MIDDLE_NAME NULLS LAST, s.PREFERRED_LAST_NAME NULLS LAST,
                s.OFFICE_ADDRESS NULLS LAST, s.OFFICE_PHONE NULLS LAST,
                s.LIBRARY_PERSON_TYPE_CODE NULLS LAST, s.LIBRARY_PERSON_TYPE NULLS LAST,
                s.ORG_UNIT_ID NULLS LAST, s.ORG_UNIT_TITLE NULLS LAST,
                s.POSITION_TITLE NULLS LAST, s.DIRECTORY_TITLE NULLS LAST
        ) AS krb_rank
    FROM staff s
)
SELECT
    r.* EXCLUDE (no_krb, krb_rank),
    CASE
        WHEN r.no_krb THEN 'missing_primary_id'
        WHEN r.krb_rank > 1 THEN 'duplicate_in_source'
    END AS rejection_reason
FROM ranked r
