package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"log/slog"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/finsync/finsync/schedules"
)

// checkEnv reports a FINSYNC_* name finsync does not read (NAME_FILE counts
// as NAME).
func checkEnv(t *testing.T, known map[string]bool, file, name string) {
	t.Helper()
	if !strings.HasPrefix(name, "FINSYNC_") {
		return
	}
	if !known[name] && !known[strings.TrimSuffix(name, "_FILE")] {
		t.Errorf("%s sets %s, which finsync does not read", file, name)
	}
}

// The Dockerfile builds a static binary in one stage and runs it as
// non-root on distroless in another.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	known := envNames()
	var froms []string
	var user string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
		case "USER":
			user = f[1]
		case "ENV":
			for _, kv := range f[1:] {
				name, _, _ := strings.Cut(kv, "=")
				checkEnv(t, known, "Dockerfile", name)
			}
		}
	}
	last := froms[len(froms)-1]
	if len(froms) < 2 || !(strings.HasPrefix(last, "gcr.io/distroless/static") || last == "scratch") {
		t.Errorf("stages %v: want a build stage and a distroless or scratch one", froms)
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("USER %q: want non-root", user)
	}
	if !strings.Contains(string(b), "CGO_ENABLED=0") || !strings.Contains(string(b), "./cmd/finsync") {
		t.Error("the build is not a static build of ./cmd/finsync")
	}
	// docker run -p 8080:8080 reaches the daemon, and docker knows its health.
	if !strings.Contains(string(b), "ENV FINSYNC_HTTP_ADDR=0.0.0.0:8080") || !strings.Contains(string(b), `HEALTHCHECK --interval=30s --timeout=10s CMD ["/finsync", "healthcheck"]`) {
		t.Error("the image does not listen on every interface or has no HEALTHCHECK running finsync healthcheck")
	}
}

// The compose file runs ClickHouse, the sandbox and finsync, and points
// finsync at the sandbox with exactly what `finsync sandbox` prints (its
// default options), so that the stack works as written.
func TestComposeFile(t *testing.T) {
	var c struct {
		Services map[string]struct {
			Image       string
			Command     []string
			Environment map[string]string
			EnvFile     []string       `yaml:"env_file"`
			DependsOn   map[string]any `yaml:"depends_on"`
			Restart     string
		}
	}
	decodeYAML(t, "../../deploy/compose.yaml", &c)
	known := envNames()
	fs, sb, ch := c.Services["finsync"], c.Services["sandbox"], c.Services["clickhouse"]
	for name, svc := range c.Services {
		if svc.Restart != "unless-stopped" {
			t.Errorf("compose.yaml: %s restarts %q, want unless-stopped", name, svc.Restart)
		}
	}
	// The sandboxes' settings come from one file.
	if !slices.Equal(fs.EnvFile, []string{"sandbox.env"}) {
		t.Fatalf("finsync's env_file %v, want [sandbox.env]", fs.EnvFile)
	}
	envFile, err := os.ReadFile("../../deploy/sandbox.env")
	if err != nil {
		t.Fatal(err)
	}
	env := maps.Clone(fs.Environment)
	for _, line := range strings.Split(string(envFile), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = v
		}
	}
	fs.Environment = env
	if !strings.HasPrefix(ch.Image, "clickhouse/clickhouse-server:") {
		t.Errorf("clickhouse image %q", ch.Image)
	}
	if !slices.Equal(sb.Command, []string{"sandbox", "-addr", "0.0.0.0:18080"}) || !slices.Equal(fs.Command, []string{"run"}) {
		t.Errorf("commands: sandbox %v, finsync %v", sb.Command, fs.Command)
	}
	for name := range fs.Environment {
		checkEnv(t, known, "compose.yaml", name)
	}
	if _, ok := fs.DependsOn["clickhouse"]; !ok {
		t.Error("finsync does not wait for clickhouse")
	}
	// What the sandbox prints with its default options, at its compose address.
	var o sandboxOptions
	o.define(flag.NewFlagSet("sandbox", flag.ContinueOnError))
	s, err := startSandbox("127.0.0.1:0", o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	for _, kv := range s.env() {
		k, v, _ := strings.Cut(kv, "=")
		v = strings.ReplaceAll(v, s.url, "http://sandbox:18080")
		if fs.Environment[k] != v {
			t.Errorf("sandbox.env: %s=%q, the sandbox says %q", k, fs.Environment[k], v)
		}
	}
	cfg, err := LoadConfig(context.Background(), lookupFrom(fs.Environment))
	if err != nil {
		t.Errorf("finsync's settings in compose.yaml: %v", err)
	}
	if cfg.ClickHouse.Addr != "clickhouse:9000" {
		t.Errorf("FINSYNC_CLICKHOUSE_ADDR %q", cfg.ClickHouse.Addr)
	}
}

// The Kubernetes manifests: every FINSYNC_* name they set is read by
// finsync; FINSYNC_SHARD splits over as many shards as the StatefulSet has
// replicas; each NAME_FILE is a key of the mounted Secret; the schedules
// ConfigMap is a valid schedules file with every stream of the built-in
// one; the probes and the Service reach the daemon's /healthz, /readyz and
// /metrics; the settings pass finsync's validation.
func TestKubernetesManifests(t *testing.T) {
	docs := map[string]k8sObject{}
	f, err := os.Open("../../deploy/kubernetes/finsync.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		docs[o.Kind+"/"+o.Metadata.Name] = o
	}
	known := envNames()
	sts, ok := docs["StatefulSet/finsync"]
	if !ok {
		t.Fatalf("no StatefulSet finsync in %v", slices.Collect(maps.Keys(docs)))
	}
	pod := sts.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	ctr := pod.Containers[0]
	env := map[string]string{}
	for _, ref := range ctr.EnvFrom {
		cm, ok := docs["ConfigMap/"+ref.ConfigMapRef.Name]
		if !ok {
			t.Fatalf("envFrom names ConfigMap %q, not in the file", ref.ConfigMapRef.Name)
		}
		for k, v := range cm.Data {
			checkEnv(t, known, "ConfigMap "+cm.Metadata.Name, k)
			env[k] = v
		}
	}
	mounts := map[string]string{} // volume → mount path
	for _, m := range ctr.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	secret := docs["Secret/finsync-credentials"]
	for _, e := range ctr.Env {
		checkEnv(t, known, "StatefulSet finsync", e.Name)
		env[e.Name] = e.Value
		if strings.HasSuffix(e.Name, "_FILE") {
			dir, key := filepath.Split(e.Value)
			if filepath.Clean(dir) != mounts["credentials"] || secret.StringData[key] == "" {
				t.Errorf("%s=%s is not a key of the mounted Secret", e.Name, e.Value)
			}
		}
	}
	if want := "$(POD_INDEX)/" + strconv.Itoa(sts.Spec.Replicas); env["FINSYNC_SHARD"] != want {
		t.Errorf("FINSYNC_SHARD %q with %d replicas: want %q", env["FINSYNC_SHARD"], sts.Spec.Replicas, want)
	}
	if ctr.LivenessProbe.HTTPGet.Path != "/healthz" || ctr.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes %q, %q", ctr.LivenessProbe.HTTPGet.Path, ctr.ReadinessProbe.HTTPGet.Path)
	}
	if svc := docs["Service/finsync"]; len(svc.Spec.Ports) == 0 || svc.Spec.Ports[0].TargetPort != "http" || svc.Metadata.Annotations["prometheus.io/path"] != "/metrics" {
		t.Errorf("Service finsync: %+v", svc)
	}
	if ctr.Ports[0].Name != "http" || !strings.HasSuffix(env["FINSYNC_HTTP_ADDR"], ":"+strconv.Itoa(ctr.Ports[0].ContainerPort)) {
		t.Errorf("container port %+v, FINSYNC_HTTP_ADDR %q", ctr.Ports, env["FINSYNC_HTTP_ADDR"])
	}
	// The daemon serves what the probes and Prometheus ask for.
	mux := daemonMux(Config{}, nil, &schedules.Daemon{}, nil, nil, nil, schedules.NewMetrics())
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/webhooks/finapi"} {
		if _, pattern := mux.Handler(httptest.NewRequest("GET", path, nil)); pattern == "" || pattern == "GET /{$}" {
			if path != "/webhooks/finapi" { // receivers are mounted for configured providers only
				t.Errorf("the daemon does not serve %s", path)
			}
		}
	}

	// The schedules file: valid, and schedules every stream the built-in one does.
	file := filepath.Join(t.TempDir(), "schedules.yaml")
	if err := os.WriteFile(file, []byte(docs["ConfigMap/finsync-schedules"].Data["schedules.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(env["FINSYNC_SCHEDULES"], mounts["schedules"]+"/") {
		t.Errorf("FINSYNC_SCHEDULES %q is not in the schedules volume at %q", env["FINSYNC_SCHEDULES"], mounts["schedules"])
	}
	lookup := map[string]string{}
	for k, v := range env {
		lookup[k] = v
	}
	lookup["FINSYNC_SCHEDULES"] = file
	lookup["FINSYNC_SHARD"] = "1/" + strconv.Itoa(sts.Spec.Replicas)
	for k, v := range lookup { // the secrets' placeholders, from files of their own
		if strings.HasSuffix(k, "_FILE") {
			_, key := filepath.Split(v)
			p := filepath.Join(t.TempDir(), key)
			os.WriteFile(p, []byte(secret.StringData[key]), 0o600)
			lookup[k] = p
		}
	}
	cfg, err := LoadConfig(context.Background(), lookupFrom(lookup))
	if err != nil {
		t.Fatalf("the manifests' settings: %v", err)
	}
	def, err := LoadConfig(context.Background(), lookupFrom(nil)) // the built-in schedules
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range providers(cfg, slog.New(slog.DiscardHandler), nil) {
		for _, s := range p.Streams {
			_, inDefault := def.sched.Find(s.Name)
			if _, ok := cfg.sched.Find(s.Name); inDefault && !ok {
				t.Errorf("the schedules ConfigMap does not schedule %s", s.Name)
			}
		}
	}
}

// The ClickHouse cluster example defines the cluster the manifests name,
// every shard with internal replication, the macros finsync's DDL uses,
// ZooKeeper and the DDL queue.
func TestClusterConfigExample(t *testing.T) {
	b, err := os.ReadFile("../../deploy/clickhouse/cluster.example.xml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Clusters struct {
			Inner []byte `xml:",innerxml"`
		} `xml:"remote_servers"`
		ZooKeeper []struct{ Host string } `xml:"zookeeper>node"`
		Shard     string                  `xml:"macros>shard"`
		Replica   string                  `xml:"macros>replica"`
		DDLPath   string                  `xml:"distributed_ddl>path"`
	}
	if err := xml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	var cluster struct {
		XMLName xml.Name
		Shards  []struct {
			Internal bool `xml:"internal_replication"`
			Replicas []struct {
				Host string `xml:"host"`
				Port int    `xml:"port"`
			} `xml:"replica"`
		} `xml:"shard"`
	}
	if err := xml.NewDecoder(bytes.NewReader(cfg.Clusters.Inner)).Decode(&cluster); err != nil {
		t.Fatal(err)
	}
	var manifests struct {
		Data map[string]string
	}
	decodeYAML(t, "../../deploy/kubernetes/finsync.yaml", &manifests) // the first document: finsync-env
	if cluster.XMLName.Local != manifests.Data["FINSYNC_CLICKHOUSE_CLUSTER"] {
		t.Errorf("cluster %q, the manifests use %q", cluster.XMLName.Local, manifests.Data["FINSYNC_CLICKHOUSE_CLUSTER"])
	}
	if len(cluster.Shards) < 2 {
		t.Errorf("%d shards", len(cluster.Shards))
	}
	for i, s := range cluster.Shards {
		if !s.Internal || len(s.Replicas) < 2 {
			t.Errorf("shard %d: internal_replication %v, %d replicas", i+1, s.Internal, len(s.Replicas))
		}
	}
	if len(cfg.ZooKeeper) == 0 || cfg.Shard == "" || cfg.Replica == "" || cfg.DDLPath == "" {
		t.Errorf("zookeeper %v, macros shard %q replica %q, distributed_ddl %q", cfg.ZooKeeper, cfg.Shard, cfg.Replica, cfg.DDLPath)
	}
}

// k8sObject is what the test reads of a manifest.
type k8sObject struct {
	Kind     string
	Metadata struct {
		Name        string
		Annotations map[string]string
	}
	Data       map[string]string
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Replicas int
		Ports    []struct {
			Name       string
			Port       int
			TargetPort string `yaml:"targetPort"`
		}
		Template struct {
			Spec struct {
				Containers []struct {
					Env []struct {
						Name, Value string
					}
					EnvFrom []struct {
						ConfigMapRef struct{ Name string } `yaml:"configMapRef"`
					} `yaml:"envFrom"`
					Ports []struct {
						Name          string
						ContainerPort int `yaml:"containerPort"`
					}
					LivenessProbe  probe `yaml:"livenessProbe"`
					ReadinessProbe probe `yaml:"readinessProbe"`
					VolumeMounts   []struct {
						Name      string
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
				}
			}
		}
	}
}

type probe struct {
	HTTPGet struct{ Path string } `yaml:"httpGet"`
}

func decodeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
