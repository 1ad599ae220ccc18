-- Staff: every row of LIBRARY_EMPLOYEE, columns in the predecessor's order.
-- Eligibility and dedupe live in queries/models/, not here.
SELECT
    e.MIT_ID,
    e.EMAIL_ADDRESS,
    e.KRB_NAME_UPPERCASE,
    e.LIBRARY_ID,
    e.PREFERRED_FIRST_NAME,
    e.PREFERRED_MIDDLE_NAME,
    e.PREFERRED_LAST_NAME,
    e.LEGAL_FIRST_NAME,
    e.LEGAL_MIDDLE_NAME,
    e.LEGAL_LAST_NAME,
    e.OFFICE_ADDRESS,
    e.OFFICE_PHONE,
    e.APPOINTMENT_END_DATE,
    e.LIBRARY_PERSON_TYPE_CODE,
    e.LIBRARY_PERSON_TYPE,
    e.ORG_UNIT_ID,
    e.ORG_UNIT_TITLE,
    e.POSITION_TITLE,
    e.DIRECTORY_TITLE
FROM LIBRARY_EMPLOYEE e
