-- The production database of the replay: the numbers are those of the public Replit incident report
-- (records of 1,206 executives and 1,196 companies).
CREATE TABLE companies (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE executives (
  id serial PRIMARY KEY,
  company_id int NOT NULL REFERENCES companies (id),
  name text NOT NULL,
  title text NOT NULL
);
INSERT INTO companies (name) SELECT 'Company ' || n FROM generate_series(1, 1196) AS n;
INSERT INTO executives (company_id, name, title)
  SELECT 1 + (n % 1196), 'Executive ' || n, 'CEO' FROM generate_series(1, 1206) AS n;
