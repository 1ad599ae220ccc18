-- Alma matches users on their identifiers: one unique ID on two users makes the
-- load fail for both (or merge the wrong people). The dedupe in verdicts.sql
-- should make this impossible; this test says so if it ever does not.
WITH ids AS (
    SELECT record_key, unnest("user".user_identifiers.user_identifier) AS i
    FROM users
),
flat AS (
    SELECT record_key, i.id_type."#text" AS id_type, i.value AS value FROM ids
),
shared AS (
    SELECT id_type, value FROM flat GROUP BY ALL HAVING count(*) > 1
)
SELECT id_type, value, count(*) AS users, list(record_key ORDER BY record_key) AS record_keys
FROM flat
JOIN shared USING (id_type, value)
GROUP BY ALL
ORDER BY id_type, value
