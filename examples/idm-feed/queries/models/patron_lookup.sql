-- Every line of the feed, with what `patronload explain` needs to find and judge
-- the person: the primary id it forms (record_key, NULL when none can be formed),
-- the rejection reason (NULL when exported), the keys people search by
-- (lower-cased: primary id, net ID, unique ID, email, names), a name to show, and
-- the line as JSON. A line that could not be read is found by any field of its
-- text, and shows its line number; other lines leave LINE_NUMBER out of the JSON,
-- so history does not report a person whose line merely moved in the file.
SELECT
    v.patron_type,
    'feed_lines' AS source,
    v.primary_id AS record_key,
    v.rejection_reason AS reason,
    list_distinct(list_filter(
        list_concat(
            [
                lower(v.primary_id), lower(strip_text(v.NET_ID)), lower(strip_text(v.UNIQUE_ID)),
                lower(strip_text(v.EMAIL)),
                lower(concat_ws(' ', strip_text(v.LEGAL_FIRST_NAME), strip_text(v.LEGAL_LAST_NAME))),
                lower(concat_ws(
                    ' ', strip_text(v.PREFERRED_FIRST_NAME), strip_text(v.PREFERRED_LAST_NAME)
                ))
            ],
            CASE
                WHEN v.RAW_LINE IS NULL THEN []
                ELSE list_transform(
                    string_split(v.RAW_LINE, '|'), lambda k: lower(strip_text(replace(k, '"', '')))
                )
            END
        ),
        lambda k: coalesce(k, '') <> ''
    )) AS search_keys,
    CASE
        WHEN v.RAW_LINE IS NOT NULL THEN 'line ' || v.LINE_NUMBER || ' of the feed (unreadable)'
        ELSE concat_ws(' ', strip_text(v.LEGAL_FIRST_NAME), strip_text(v.LEGAL_LAST_NAME))
    END AS display_name,
    to_json({
        'UNIQUE_ID': v.UNIQUE_ID,
        'NET_ID': v.NET_ID,
        'LEGAL_FIRST_NAME': v.LEGAL_FIRST_NAME,
        'LEGAL_LAST_NAME': v.LEGAL_LAST_NAME,
        'PREFERRED_FIRST_NAME': v.PREFERRED_FIRST_NAME,
        'PREFERRED_LAST_NAME': v.PREFERRED_LAST_NAME,
        'EMAIL': v.EMAIL,
        'PHONE': v.PHONE,
        'PRIMARY_AFFILIATION': v.PRIMARY_AFFILIATION,
        'AFFILIATIONS': v.AFFILIATIONS,
        'PARTNER_CAMPUS': v.PARTNER_CAMPUS,
        'ON_MAIN_CAMPUS': v.ON_MAIN_CAMPUS::INTEGER,
        'DEPARTMENT': v.DEPARTMENT,
        'END_DATE': v.END_DATE,
        'LINE_NUMBER': CASE WHEN v.PARSE_ERROR IS NOT NULL THEN v.LINE_NUMBER::BIGINT END,
        'PARSE_ERROR': v.PARSE_ERROR,
        'RAW_LINE': v.RAW_LINE
    })::VARCHAR AS raw
FROM verdicts v
