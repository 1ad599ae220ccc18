-- Per patron type: rows extracted, exported and rejected. The exporter refuses
-- to write anything unless extracted = exported + rejected for every type.
WITH extracted AS (
    SELECT 'staff' AS patron_type, count(*) AS n FROM staff
    UNION ALL
    SELECT 'student' AS patron_type, count(*) AS n FROM student
),
exported AS (
    SELECT u.patron_type, count(*) AS n FROM users u GROUP BY u.patron_type
),
rejected AS (
    SELECT j.patron_type, count(*) AS n FROM rejections j GROUP BY j.patron_type
)
SELECT
    e.patron_type,
    e.n AS extracted,
    coalesce(x.n, 0) AS exported,
    coalesce(r.n, 0) AS rejected
FROM extracted e
LEFT JOIN exported x ON x.patron_type = e.patron_type
LEFT JOIN rejected r ON r.patron_type = e.patron_type
ORDER BY e.patron_type
