-- Every line of the identity feed. Thin on purpose: eligibility, dedupe and
-- malformed lines are decided in queries/models/, where each gets a reason.
SELECT
    u.UNIQUE_ID,
    u.NET_ID,
    u.LEGAL_FIRST_NAME,
    u.LEGAL_LAST_NAME,
    u.PREFERRED_FIRST_NAME,
    u.PREFERRED_LAST_NAME,
    u.EMAIL,
    u.PHONE,
    u.PRIMARY_AFFILIATION,
    u.AFFILIATIONS,
    u.PARTNER_CAMPUS,
    u.ON_MAIN_CAMPUS,
    u.DEPARTMENT,
    u.END_DATE,
    u.LINE_NUMBER,
    u.PARSE_ERROR,
    u.RAW_LINE
FROM IDM_USERS u
