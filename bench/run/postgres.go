package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/keyward/keyward/bench/load"
)

// cluster is a private PostgreSQL cluster in a temporary directory, run by
// the postgres user and pinned to the server core: the machine's shared
// PostgreSQL (5432) is never touched.
type cluster struct {
	bindir, dir, data string
	port              int
}

// pgStartArgs is the command that starts the cluster pinned to core: the
// postmaster and every backend it forks inherit the pin.
func pgStartArgs(core int, bindir, data, sock string, port int) []string {
	return load.Pinned(core, "runuser", "-u", "postgres", "--", filepath.Join(bindir, "pg_ctl"),
		"-D", data, "-l", filepath.Join(filepath.Dir(data), "postgres.log"), "-w", "-t", "60",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", port, sock), "start")
}

// startCluster initdbs a cluster into a fresh temporary directory and starts
// it on a free port pinned to core.
func startCluster(ctx context.Context, core int) (*cluster, error) {
	out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output()
	if err != nil {
		return nil, fmt.Errorf("pg_config --bindir: %w", err)
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("the postgres user: %w", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	dir, err := os.MkdirTemp("", "keyward-bench-pg-")
	if err != nil {
		return nil, err
	}
	c := &cluster{bindir: strings.TrimSpace(string(out)), dir: dir, data: filepath.Join(dir, "data")}
	if err := os.Chown(dir, uid, gid); err != nil {
		c.remove()
		return nil, err
	}
	if c.port, err = freePort(); err != nil {
		c.remove()
		return nil, err
	}
	steps := [][]string{
		{"runuser", "-u", "postgres", "--", filepath.Join(c.bindir, "initdb"), "-D", c.data, "-U", "postgres",
			"--auth=trust", "-E", "UTF8", "--no-sync"},
		pgStartArgs(core, c.bindir, c.data, dir, c.port),
	}
	for _, argv := range steps {
		if b, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
			c.stop()
			return nil, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, b)
		}
	}
	return c, nil
}

// createDB makes a fresh database and returns its DSN.
func (c *cluster) createDB(ctx context.Context, name string) (string, error) {
	b, err := exec.CommandContext(ctx, filepath.Join(c.bindir, "createdb"), "-h", "127.0.0.1", "-p", strconv.Itoa(c.port),
		"-U", "postgres", name).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("createdb %s: %w: %s", name, err, b)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name), nil
}

// stop stops the cluster and deletes its directory.
func (c *cluster) stop() {
	exec.Command("runuser", "-u", "postgres", "--", filepath.Join(c.bindir, "pg_ctl"), "-D", c.data, "-m", "fast", "-w", "stop").Run()
	c.remove()
}

func (c *cluster) remove() { os.RemoveAll(c.dir) }
