-- Every user group sent must be one configured in Alma (queries/seeds/user_groups.csv).
-- Every exported person has a group here (from queries/seeds/affiliations.csv).
SELECT u.patron_type, u."user".user_group."#text" AS user_group, count(*) AS users
FROM users u
LEFT JOIN user_groups g ON g.code = u."user".user_group."#text"
WHERE coalesce(u."user".user_group."#text", '') <> '' AND g.code IS NULL
GROUP BY ALL
ORDER BY ALL
