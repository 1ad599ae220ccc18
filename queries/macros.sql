-- Small helpers shared by the models. Run before any model, in this order.

-- Python's str.strip(): surrounding white space of any kind, not only blanks.
CREATE MACRO strip_text(s) AS regexp_replace(s, '^[\s\p{Z}\x0b]+|[\s\p{Z}\x0b]+$', '', 'g');

-- A value that is NULL or only white space counts as absent.
CREATE MACRO is_blank(s) AS coalesce(strip_text(s), '') = '';

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

-- One phone element; the number is formatted here so both patron types agree.
CREATE MACRO phone(number, preferred, kind, kind_desc) AS {
    '@preferred': preferred,
    '@preferred_sms': 'false',
    '@segment_type': 'External',
    'phone_number': format_phone(number),
    'phone_types': {'phone_type': coded(kind, kind_desc)}
};
