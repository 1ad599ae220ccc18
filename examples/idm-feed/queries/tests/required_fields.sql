-- What Alma needs to create or update a user: a primary id, a user group, an
-- expiry date, a record, account and status code, and the university's unique ID
-- as an identifier of the agreed type (without it an existing account is not updated).
SELECT record_key, patron_type, missing
FROM (
    SELECT
        record_key,
        patron_type,
        list_filter([
            CASE WHEN coalesce(u."user".primary_id, '') = '' THEN 'primary_id' END,
            CASE WHEN coalesce(u."user".user_group."#text", '') = '' THEN 'user_group' END,
            CASE WHEN coalesce(u."user".expiry_date, '') = '' THEN 'expiry_date' END,
            CASE WHEN coalesce(u."user".record_type."#text", '') = '' THEN 'record_type' END,
            CASE WHEN coalesce(u."user".account_type."#text", '') = '' THEN 'account_type' END,
            CASE WHEN coalesce(u."user".status."#text", '') = '' THEN 'status' END,
            CASE
                WHEN len(list_filter(
                    u."user".user_identifiers.user_identifier,
                    lambda i: i.id_type."#text" = 'UNIQUE_ID' AND coalesce(i.value, '') <> ''
                )) <> 1
                THEN 'user_identifier UNIQUE_ID'
            END
        ], lambda m: m IS NOT NULL) AS missing
    FROM users u
)
WHERE len(missing) > 0
ORDER BY record_key
