package sandbox

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestSandboxSpeaksTheDocs checks the documented status codes on the wire.
func TestSandboxSpeaksTheDocs(t *testing.T) {
	sb := New(Options{UsersPerTenant: 30})
	srv := httptest.NewServer(sb)
	defer srv.Close()
	defer sb.Close()
	id, secret := Credentials("mandator")
	resp, err := http.PostForm(srv.URL+"/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	call := func(method, path, body string, auth bool) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if auth {
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := call("POST", "/segments/highBalance", `{"accountType":"checking","threshold":5000}`, false); code != 401 {
		t.Errorf("without a token: %d", code)
	}
	if code, body := call("POST", "/segments/financialBreakdown", `{"labelGroups":["SALARY"],"numberOfMonths":13}`, true); code != 400 || !strings.Contains(body, "outside 1..12") {
		t.Errorf("a 13-month breakdown: %d %s", code, body)
	}
	code, body := call("POST", "/segments/highBalance", `{"accountType":"checking","threshold":5000}`, true)
	var job createResponse
	json.Unmarshal([]byte(body), &job)
	if code != 200 || job.JobID == "" {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, _ := call("GET", "/segments/highBalance/"+job.JobID, "", true); code != 404 {
		t.Errorf("first poll: %d, want 404 (not ready)", code)
	}
	if code, _ := call("GET", "/segments/highBalance/no-such-job", "", true); code != 400 {
		t.Errorf("unknown job: %d, want 400", code)
	}
	var users int
	for number := 0; ; number++ {
		code, body := call("GET", "/segments/highBalance/"+job.JobID+"?number="+string(rune('0'+number))+"&size=4", "", true)
		var pg struct {
			Users         []json.RawMessage `json:"users"`
			TotalElements int               `json:"totalElements"`
			TotalPages    int               `json:"totalPages"`
		}
		if err := json.Unmarshal([]byte(body), &pg); code != 200 || err != nil {
			t.Fatalf("page %d: %d %s", number, code, body)
		}
		users += len(pg.Users)
		if number+1 >= pg.TotalPages {
			if users != pg.TotalElements || pg.TotalPages < 2 {
				t.Errorf("%d users over %d pages, totalElements %d", users, number+1, pg.TotalElements)
			}
			break
		}
	}
	// Fifteen days on, finAPI has deleted the segment.
	sb.SetToday(sb.Today().AddDate(0, 0, 15))
	if code, _ := call("GET", "/segments/highBalance/"+job.JobID, "", true); code != 400 {
		t.Errorf("expired job: %d, want 400", code)
	}
}
