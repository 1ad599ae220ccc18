-- Every line of the feed has exactly one verdict (row_accounting counts per patron
-- type and would not notice a line judged twice, say by a seed listing an
-- affiliation twice), and a line that could not be read is never exported.
SELECT v.LINE_NUMBER AS line_number, count(*) AS verdicts, 'line judged more than once' AS problem
FROM verdicts v
GROUP BY v.LINE_NUMBER
HAVING count(*) > 1
UNION ALL
SELECT v.LINE_NUMBER, 1, 'unreadable line not rejected as malformed_line'
FROM verdicts v
WHERE v.PARSE_ERROR IS NOT NULL AND v.rejection_reason IS DISTINCT FROM 'malformed_line'
ORDER BY 1
