package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/load/clickhouse"
)

// runReactivate is `finsync reactivate`: an operator lifts a subject's
// quarantine (the provider answered for it as if it did not know it) or
// revocation, once the cause is known; the next run reads it again.
func runReactivate(ctx context.Context, a *app, args []string) error {
	var provider, tenant, id string
	err := a.flags("reactivate", summaryOf("reactivate"), args, func(fs *flag.FlagSet) {
		fs.StringVar(&provider, "provider", "", "the subject's provider, e.g. fimento")
		fs.StringVar(&tenant, "tenant", "", "the subject's tenant (a Fimento partner bank, a finoOS tenant)")
		fs.StringVar(&id, "subject", "", "the subject's id (subjects.subject_id)")
	})
	if err != nil {
		return err
	}
	if provider == "" || id == "" {
		fmt.Fprintln(a.stderr, "finsync reactivate: -provider and -subject are required (and -tenant where the provider has tenants)")
		return errUsage
	}
	c, db, _, err := a.migrated(ctx, "reactivate", nil)
	if err != nil {
		return err
	}
	defer db.Close()
	state := clickhouse.NewState(db, clickhouse.NewLoader(db, c.loaderOptions(a.logger(c))))
	var kinds []string
	for _, p := range providers(c, a.logger(c), nil) {
		if p.Name != provider {
			continue
		}
		for _, s := range p.Streams {
			if s.SubjectKind != "" && !slices.Contains(kinds, s.SubjectKind) {
				kinds = append(kinds, s.SubjectKind)
			}
		}
	}
	for _, kind := range kinds {
		subs, err := state.Subjects(ctx, provider, tenant, kind)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(subs, func(s extract.Subject) bool { return s.ID == id })
		if i < 0 {
			continue
		}
		sub := subs[i]
		if sub.Status != extract.SubjectQuarantined && sub.Status != extract.SubjectRevoked && sub.Status != "skipped" {
			fmt.Fprintf(a.stdout, "%s %s/%s/%s is active already\n", kind, provider, tenant, id)
			return nil
		}
		was := strings.TrimSpace(sub.Status + ": " + sub.StatusDetail)
		sub.Status, sub.Source = extract.SubjectActive, clickhouse.SourceInsert
		sub.StatusDetail = fmt.Sprintf("reactivated by an operator at %s; was %s", time.Now().UTC().Format(time.RFC3339), was)
		if err := state.AddSubjects(ctx, []extract.Subject{sub}); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "%s %s/%s/%s reactivated (was %s); its streams read it again from their next run\n", kind, provider, tenant, id, was)
		return nil
	}
	if kinds == nil {
		return fmt.Errorf("no provider %q has subjects", provider)
	}
	return fmt.Errorf("no %s subject %q of tenant %q in the registry", provider, id, tenant)
}
