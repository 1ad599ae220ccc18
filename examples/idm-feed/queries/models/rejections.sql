-- Every line of the feed that is not exported, with its reason code, its line
-- in users.txt, the fields people use to find the person, and for a line that
-- could not be read the problem and the line's text.
SELECT
    v.patron_type,
    v.rejection_reason AS reason,
    v.LINE_NUMBER AS line_number,
    v.UNIQUE_ID AS unique_id,
    v.NET_ID AS net_id,
    v.LEGAL_FIRST_NAME AS first_name,
    v.LEGAL_LAST_NAME AS last_name,
    v.PRIMARY_AFFILIATION AS primary_affiliation,
    v.PARTNER_CAMPUS AS partner_campus,
    v.PARSE_ERROR AS problem,
    v.RAW_LINE AS raw_line
FROM verdicts v
WHERE v.rejection_reason IS NOT NULL
