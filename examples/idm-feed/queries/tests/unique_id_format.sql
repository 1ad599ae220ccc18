-- severity: warn
-- The university's unique IDs are eight digits (leading zeros kept). Another
-- shape usually means a column shifted in the export; Alma accepts it, so this
-- only warns.
SELECT record_key, u."user".user_identifiers.user_identifier[1].value AS unique_id
FROM users u
WHERE NOT regexp_full_match(u."user".user_identifiers.user_identifier[1].value, '\d{8}')
ORDER BY record_key
