package main

import (
	"net/http/httptest"
	"strings"
	"testing"

	finosb "github.com/finsync/finsync/extract/fino/sandbox"
	"github.com/finsync/finsync/load/clickhouse/chtest"
)

// Provider certificates are verified by default: a sandbox behind a
// self-signed certificate is refused, and only FINSYNC_INSECURE_SKIP_VERIFY
// (which every command warns about) lets finsync talk to it.
func TestCertificatesAreVerifiedByDefault(t *testing.T) {
	sb := finosb.New(finosb.Options{UsersPerTenant: 1, Months: 1})
	srv := httptest.NewTLSServer(sb)
	defer srv.Close()
	defer sb.Close()
	opts := chtest.Options(t)
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	env := map[string]string{"FINSYNC_CLICKHOUSE_ADDR": opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE": opts.Database, "FINSYNC_LOG_LEVEL": "warn",
		"FINSYNC_FINO_BASE_URL": srv.URL, "FINSYNC_FINO_CLIENT_ID": "sandbox-client", "FINSYNC_FINO_CLIENT_SECRET": "sandbox-secret",
		"FINSYNC_FINO_USERS": strings.Join(sb.Users("sandbox-client"), ",")}
	code, stdout, stderr := run(t, env, "once", "-stream", "fino.accounts")
	if code == 0 || !strings.Contains(stdout+stderr, "certificate") {
		t.Fatalf("a self-signed provider was accepted: exit %d\n%s\n%s", code, stdout, stderr)
	}
	env["FINSYNC_INSECURE_SKIP_VERIFY"] = "true"
	code, stdout, stderr = run(t, env, "once", "-stream", "fino.accounts")
	if code != 0 || !strings.Contains(stdout, "success") || !strings.Contains(stderr, "are NOT verified") {
		t.Fatalf("with FINSYNC_INSECURE_SKIP_VERIFY: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr := run(t, env, "validate"); code != 0 || !strings.Contains(stderr, "WARNING: FINSYNC_INSECURE_SKIP_VERIFY") {
		t.Errorf("validate does not warn: %s", stderr)
	}
}
