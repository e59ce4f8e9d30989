package faults

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/keys"
)

// binDir holds the keyward binaries every test of the package shares.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keyward-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	normalBin = sync.OnceValues(func() (string, error) { return testsupport.BuildKeywardInto(binDir) })
	faultyBin = sync.OnceValues(func() (string, error) { return testsupport.BuildKeywardInto(binDir, "faultinject") })
)

// keyward returns the binary to run: the normal build, or for a negative
// control (faulty) the faultinject build whose transactions acknowledge
// before they commit.
func keyward(t *testing.T, faulty bool) string {
	t.Helper()
	build := normalBin
	if faulty {
		build = faultyBin
	}
	bin, err := build()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// The client and the users the load uses.
const (
	clientID     = "svc"
	userPassword = "fault tests keep every write"
	scope        = "api:read"
)

// cluster is the keyward processes of one test on one database, and the
// client secret and users they share.
type cluster struct {
	t      *testing.T
	bin    string
	dsn    string
	faulty bool
	dir    string // the KEK, the mail outbox
	kek    string
	// commitDelay, for a faulty cluster, is how long its transactions stay
	// open after they were acknowledged (0: the build's default).
	commitDelay time.Duration
	secret      string   // clientID's secret
	users       []string // created with userPassword
}

// env is what every keyward process of the tests gets: cheap password
// hashes (the tests measure faults, not hashing), and the registration
// limit out of the load's way.
func (c *cluster) env() []string {
	return append(os.Environ(),
		"KEYWARD_PASSWORD_HASH_CEILING=m=19456,t=2,bcrypt=10",
		"KEYWARD_KEY_ENCRYPTION_KEY_FILE="+c.kek,
		"KEYWARD_MAIL_OUTBOX="+filepath.Join(c.dir, "outbox"),
	)
}

// newCluster prepares dsn (a fresh database) for the load: the client, and
// users users, created with the keyward CLI.
func newCluster(t *testing.T, dsn string, faulty bool, users int) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: keyward(t, faulty), dsn: dsn, faulty: faulty, dir: t.TempDir()}
	c.kek = filepath.Join(c.dir, "keyward.kek")
	if err := os.WriteFile(c.kek, []byte(keys.EncodeKEK(keys.NewKEK())), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.cli("", "migrate"); err != nil {
		t.Fatal(err)
	}
	out, err := c.cli("", "clients", "create", "--id", clientID, "--grant", "client_credentials", "--grant", "password",
		"--grant", "refresh_token", "--scope", scope, "--audience", "api", "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Secret == "" {
		t.Fatalf("clients create printed %q: %v", out, err)
	}
	c.secret = created.Secret
	for i := range users {
		name := fmt.Sprintf("user%d", i)
		if _, err := c.cli(userPassword+"\n", "users", "create", "--username", name, "--password-stdin"); err != nil {
			t.Fatal(err)
		}
		c.users = append(c.users, name)
	}
	return c
}

// cli runs a keyward command on the database (never with the fault switch:
// setup must be stored for real) and returns its standard output.
func (c *cluster) cli(stdin string, args ...string) (string, error) {
	cmd := exec.Command(c.bin, append([]string{"--database", c.dsn}, args...)...)
	cmd.Env = c.env()
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("keyward %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// serve starts a keyward serve on a free loopback port with the load's
// settings and args; a faulty cluster's server acknowledges before it
// commits.
func (c *cluster) serve(args ...string) *testsupport.Process {
	c.t.Helper()
	addr := testsupport.FreeAddr(c.t)
	base := []string{"serve", "--database", c.dsn, "--addr", addr, "--issuer", "http://" + addr,
		"--registration", "--login-ip-limit", "1000000", "--refresh-reuse-window", "1m"}
	if c.faulty && c.commitDelay > 0 {
		// Each transaction held open commitDelay keeps a connection outside
		// the pool's turns. With the default pool of 8 the pending
		// rotations took them all, later requests waited for some commit
		// to get one, and answers came after the commits: the negative
		// control then found no lost write (1 run of 2).
		base = append(base, "--database-pool", "32")
	}
	cmd := exec.Command(c.bin, append(base, args...)...)
	cmd.Env = c.env()
	if c.faulty {
		cmd.Env = append(cmd.Env, "KEYWARD_FAULT_ACK_BEFORE_COMMIT=1")
		if c.commitDelay > 0 {
			cmd.Env = append(cmd.Env, "KEYWARD_FAULT_COMMIT_DELAY="+c.commitDelay.String())
		}
	}
	p := testsupport.StartProcess(c.t, cmd)
	if c.faulty {
		testsupport.WaitFor(c.t, "keyward process", p.Log, faultArmed, nil, 30*time.Second)
	}
	return p
}

// faultArmed is what the faultinject build says when transactions start
// to acknowledge before they commit.
var faultArmed = regexp.MustCompile(`faultinject: transactions now acknowledge before they commit`)

// signal sends sig to p and, for SIGKILL and SIGTERM, waits (20 s at most)
// until it has exited.
func signal(t *testing.T, p *testsupport.Process, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(p.Pid(), sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("keyward did not exit on %v", sig)
	}
}
