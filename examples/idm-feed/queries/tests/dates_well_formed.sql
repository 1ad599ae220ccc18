-- Alma reads expiry and purge dates as YYYY-MM-DD with a trailing Z; anything else
-- fails the record. The purge date must come after the expiry date.
SELECT record_key, u."user".expiry_date AS expiry_date, u."user".purge_date AS purge_date
FROM users u
WHERE NOT regexp_full_match(coalesce(u."user".expiry_date, ''), '\d{4}-\d{2}-\d{2}Z')
   OR NOT regexp_full_match(coalesce(u."user".purge_date, ''), '\d{4}-\d{2}-\d{2}Z')
   OR try_strptime(u."user".expiry_date, '%Y-%m-%dZ') IS NULL
   OR try_strptime(u."user".purge_date, '%Y-%m-%dZ') IS NULL
   OR u."user".purge_date <= u."user".expiry_date
ORDER BY record_key
