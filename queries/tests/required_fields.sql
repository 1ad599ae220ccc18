-- What Alma needs to create or update a user: a primary id, a user group element,
-- an expiry date, and a record, account and status code.
SELECT record_key, patron_type, missing
FROM (
    SELECT
        record_key,
        patron_type,
        list_filter([
            CASE WHEN coalesce(u."user".primary_id, '') = '' THEN 'primary_id' END,
            CASE WHEN u."user".user_group IS NULL THEN 'user_group' END,
            CASE WHEN coalesce(u."user".expiry_date, '') = '' THEN 'expiry_date' END,
            CASE WHEN coalesce(u."user".record_type."#text", '') = '' THEN 'record_type' END,
            CASE WHEN coalesce(u."user".account_type."#text", '') = '' THEN 'account_type' END,
            CASE WHEN coalesce(u."user".status."#text", '') = '' THEN 'status' END
        ], lambda m: m IS NOT NULL) AS missing
    FROM users u
)
WHERE len(missing) > 0
ORDER BY record_key
