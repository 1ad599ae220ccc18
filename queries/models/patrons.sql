-- Every exported patron of every type, in the shared columns. Staff and
-- student rows are disjoint by construction (see student_verdicts).
-- materialized: view   (read only by users; not worth storing)
SELECT * FROM staff_patrons
UNION ALL BY NAME
SELECT * FROM student_patrons
