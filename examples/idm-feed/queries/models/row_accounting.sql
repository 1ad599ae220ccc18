-- Per patron type: lines extracted, exported and rejected. The exporter refuses
-- to write anything unless extracted = exported + rejected for every type.
-- The types of affiliations.csv are always listed, even with no line, so an
-- empty file type is seen (and refused by the feed guard) instead of vanishing.
WITH types AS (
    SELECT DISTINCT a.patron_type FROM affiliations a
    UNION
    SELECT DISTINCT f.patron_type FROM classified_lines f
),
extracted AS (
    SELECT f.patron_type, count(*) AS n FROM classified_lines f GROUP BY f.patron_type
),
exported AS (
    SELECT u.patron_type, count(*) AS n FROM users u GROUP BY u.patron_type
),
rejected AS (
    SELECT j.patron_type, count(*) AS n FROM rejections j GROUP BY j.patron_type
)
SELECT
    t.patron_type,
    coalesce(e.n, 0) AS extracted,
    coalesce(x.n, 0) AS exported,
    coalesce(r.n, 0) AS rejected
FROM types t
LEFT JOIN extracted e ON e.patron_type = t.patron_type
LEFT JOIN exported x ON x.patron_type = t.patron_type
LEFT JOIN rejected r ON r.patron_type = t.patron_type
ORDER BY t.patron_type
