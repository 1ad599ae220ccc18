-- Every user group sent must be one configured in Alma (queries/seeds/user_groups.csv).
-- An empty group is the predecessor's rule for people without a type, and is allowed.
SELECT u.patron_type, u."user".user_group."#text" AS user_group, count(*) AS users
FROM users u
LEFT JOIN user_groups g ON g.code = u."user".user_group."#text"
WHERE coalesce(u."user".user_group."#text", '') <> '' AND g.code IS NULL
GROUP BY ALL
ORDER BY ALL
