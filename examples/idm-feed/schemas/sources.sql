-- The identity-management feed (users.txt), as the extract query may read it.
-- Oracle dialect, like every project's sources. The file is read with these
-- names and types: nothing is guessed, so UNIQUE_ID keeps its leading zeros, and a
-- value that is not of its type (a bad END_DATE) makes the line's PARSE_ERROR.

CREATE TABLE IDM_USERS (
    UNIQUE_ID VARCHAR2(20),             -- the university's person number, e.g. 00012345
    NET_ID VARCHAR2(64),                -- login name; the primary id is built from it
    LEGAL_FIRST_NAME VARCHAR2(255),
    LEGAL_LAST_NAME VARCHAR2(255),
    PREFERRED_FIRST_NAME VARCHAR2(255),
    PREFERRED_LAST_NAME VARCHAR2(255),
    EMAIL VARCHAR2(255),
    PHONE VARCHAR2(64),
    PRIMARY_AFFILIATION VARCHAR2(30),   -- faculty, staff, student, affiliate, ...
    AFFILIATIONS VARCHAR2(255),         -- every affiliation, separated by ';'
    PARTNER_CAMPUS VARCHAR2(30),        -- code of a partner campus; empty on the main campus
    ON_MAIN_CAMPUS NUMBER(1),           -- 1: studies or works on the main campus
    DEPARTMENT VARCHAR2(255),
    END_DATE DATE,                      -- YYYY-MM-DD, or empty when open-ended
    -- Filled by the extract, not read from the file (see patronload.toml):
    LINE_NUMBER NUMBER(10),             -- the line of users.txt
    PARSE_ERROR VARCHAR2(4000),         -- why the line or a value could not be read
    RAW_LINE VARCHAR2(4000)             -- the text of a line that could not be split
);
