package clickhouse

import "io/fs"

// MigrationStatements are the statements of each migration file of files,
// split as Migrate splits them, in order: for running them elsewhere than
// through Migrate (the modern engine has no native port).
func MigrationStatements(files fs.FS) (names []string, statements [][]string, err error) {
	migrations, err := readMigrations(files)
	for _, m := range migrations {
		names = append(names, m.name)
		var texts []string
		for _, st := range m.statements {
			texts = append(texts, st.text)
		}
		statements = append(statements, texts)
	}
	return names, statements, err
}
