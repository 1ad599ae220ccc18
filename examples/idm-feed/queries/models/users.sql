-- The final model: one row per user. The "user" column is the XML record:
-- struct fields are child elements in order, '@x' keys are attributes,
-- '#text' is an element's text, a list repeats its element, NULL leaves the
-- element out and '' writes it empty.
--
-- The university's UNIQUE_ID goes in user_identifiers with the id type agreed
-- with Alma (UNIQUE_ID): Alma matches existing accounts on it, and a record
-- without it is not updated. The primary id is the net ID at example.edu.
SELECT
    p.patron_type,
    p.primary_id AS record_key,
    {
        'record_type': coded('PUBLIC', 'Public'),
        'primary_id': p.primary_id,
        'first_name': p.first_name,
        'middle_name': '',
        'last_name': p.last_name,
        'user_title': coded('', ''),
        'job_category': coded('', ''),
        'job_description': '',
        'user_group': p.user_group,
        'campus_code': coded('', ''),
        'preferred_language': coded('en', 'English'),
        'expiry_date': strftime(p.expiry, '%Y-%m-%d') || 'Z',
        'purge_date': strftime(p.expiry + INTERVAL 2 YEAR, '%Y-%m-%d') || 'Z',
        'account_type': coded('EXTERNAL', 'External'),
        'external_id': 'SIS',
        'password': '',
        'status': coded('ACTIVE', 'Active'),
        'contact_info': {
            'emails': {
                'email': CASE
                    WHEN p.email_address IS NULL THEN []
                    ELSE [{
                        '@preferred': 'true',
                        '@segment_type': 'External',
                        'email_address': p.email_address,
                        'email_types': {'email_type': coded('work', 'Work')}
                    }]
                END
            },
            'phones': {
                'phone': CASE
                    WHEN p.phone_number IS NULL THEN []
                    ELSE [{
                        '@preferred': 'true',
                        '@preferred_sms': 'false',
                        '@segment_type': 'External',
                        'phone_number': format_phone(p.phone_number),
                        'phone_types': {'phone_type': coded('office', 'Office')}
                    }]
                END
            }
        },
        'pref_first_name': p.pref_first_name,
        'pref_middle_name': '',
        'pref_last_name': p.pref_last_name,
        'pref_name_suffix': '',
        'user_identifiers': {
            'user_identifier': [{
                '@segment_type': 'External',
                'id_type': coded('UNIQUE_ID', 'University unique ID'),
                'value': p.unique_id,
                'status': 'ACTIVE'
            }]
        },
        'user_roles': {
            'user_role': [{
                'status': coded('ACTIVE', 'Active'),
                'scope': coded('01EXAMPLE_INST', 'Example State University'),
                'role_type': coded('200', 'Patron'),
                'parameters': ''
            }]
        },
        'user_blocks': '',
        'user_notes': '',
        'user_statistics': {
            'user_statistic': [{
                '@segment_type': 'External',
                'statistic_category': p.statistic_category,
                'category_type': coded('DEPT', 'Department')
            }]
        },
        'proxy_for_users': ''
    } AS "user"
FROM patrons p
