-- Small helpers shared by the models. Run before any model, in this order.

-- Python's str.strip(): surrounding white space of any kind, not only blanks.
CREATE MACRO strip_text(s) AS regexp_replace(s, '^[\s\p{Z}\x0b]+|[\s\p{Z}\x0b]+$', '', 'g');

-- A value that is NULL or only white space counts as absent.
CREATE MACRO is_blank(s) AS coalesce(strip_text(s), '') = '';

-- The primary id Alma knows a person by: the net ID at the university's domain,
-- lower-cased (NULL when there is no net ID).
CREATE MACRO primary_id_of(net_id) AS
    CASE WHEN NOT is_blank(net_id) THEN lower(strip_text(net_id)) || '@example.edu' END;

-- Every affiliation of a person, lower-cased, sorted, each once: the ';'-separated
-- list plus the primary affiliation (which the feed does not always repeat).
CREATE MACRO affiliation_list(primary_affiliation, affiliations) AS list_sort(list_distinct(
    list_filter(
        list_transform(
            string_split(concat_ws(';', primary_affiliation, affiliations), ';'),
            lambda a: lower(strip_text(a))
        ),
        lambda a: a <> ''
    )
));

-- Every run of ten digits, scanned left to right without overlap, becomes
-- ddd-ddd-dddd; all other text is left as it is.
CREATE MACRO format_phone(s) AS regexp_replace(s, '(\d{3})(\d{3})(\d{4})', '\1-\2-\3', 'g');

-- The preferred name is sent only when it says something the legal name does not.
CREATE MACRO preferred_name(preferred, legal) AS
    CASE
        WHEN is_blank(preferred) THEN ''
        WHEN lower(strip_text(preferred)) = lower(coalesce(strip_text(legal), '')) THEN ''
        ELSE strip_text(preferred)
    END;

-- A code-table element: <name desc="...">code</name>.
CREATE MACRO coded(code, description) AS {'@desc': description, '#text': code};
