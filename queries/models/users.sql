-- The final model: one row per user. The "user" column is the XML record:
-- struct fields are child elements in order, '@x' keys are attributes,
-- '#text' is an element's text, a list repeats its element, NULL leaves the
-- element out and '' writes it empty.
SELECT
    p.patron_type,
    p.primary_id AS record_key,
    {
        'record_type': coded('PUBLIC', 'Public'),
        'primary_id': p.primary_id,
        'first_name': p.first_name,
        'middle_name': p.middle_name,
        'last_name': p.last_name,
        'user_title': coded('', ''),
        'job_category': coded('', ''),
        'job_description': '',
        'gender': p.gender,
        'user_group': p.user_group,
        'campus_code': coded('', ''),
        'web_site_url': '',
        'cataloger_level': coded('00', '[00] Default Level'),
        'preferred_language': coded('en', 'English'),
        'expiry_date': strftime(r.as_of + INTERVAL 6 MONTH, '%Y-%m-%d') || 'Z',
        'purge_date': strftime(r.as_of + INTERVAL '2 years 6 months', '%Y-%m-%d') || 'Z',
        'account_type': coded('EXTERNAL', 'External'),
        'external_id': 'SIS',
        'password': '',
        'status': coded('ACTIVE', 'Active'),
        'contact_info': {
            'addresses': {
                'address': [{
                    '@preferred': 'true',
                    '@segment_type': 'External',
                    'line1': p.address.line1,
                    'line3': p.address.line3,
                    'city': p.address.city,
                    'state_province': p.address.state_province,
                    'postal_code': p.address.postal_code,
                    'country': coded('', ''),
                    'address_note': 'User Address Type: Mailing address',
                    'address_types': {'address_type': coded('work', 'Work')}
                }]
            },
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
            'phones': {'phone': p.phones}
        },
        'pref_first_name': p.pref_first_name,
        'pref_middle_name': p.pref_middle_name,
        'pref_last_name': p.pref_last_name,
        'pref_name_suffix': '',
        'is_researcher': p.is_researcher,
        'user_identifiers': {
            'user_identifier': list_concat(
                [{
                    '@segment_type': 'External',
                    'id_type': coded('02', 'MIT ID'),
                    'value': p.mit_id,
                    'status': 'ACTIVE'
                }],
                CASE
                    WHEN p.barcode IS NULL THEN []
                    ELSE [{
                        '@segment_type': 'External',
                        'id_type': coded('01', 'Barcode'),
                        'value': p.barcode,
                        'status': 'ACTIVE'
                    }]
                END
            )
        },
        'user_roles': {
            'user_role': [{
                'status': coded('ACTIVE', 'Active'),
                'scope': coded('01MIT_INST', 'Massachusetts Institute of Technology'),
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
CROSS JOIN run_context r
