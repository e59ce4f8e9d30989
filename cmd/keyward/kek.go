package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage"
)

// kekEnv carries the key-encryption key itself. It has no flag: a command
// line is readable by every local user (ps, /proc/PID/cmdline).
const kekEnv = "KEYWARD_KEY_ENCRYPTION_KEY"

// kekFileName is the key-encryption key a SQLite deployment generates when
// given none, beside the database file.
const kekFileName = "keyward.kek"

// kekFlags name the key-encryption key; serve and the keys commands share
// them. kek is set only from KEYWARD_KEY_ENCRYPTION_KEY (bindEnv) or the
// configuration file: the hidden --key-encryption-key exists so that
// refuseSecretFlags can refuse it with a clear message, and so that bindEnv
// and the file find it. source checks them without opening anything;
// kekSource.load reads or generates the key.
type kekFlags struct {
	kek, kekFile string
}

func (k *kekFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&k.kek, "key-encryption-key", "", "the 32-byte key-encryption key itself, base64; refused on the command line: set "+kekEnv+
		", give it in the --config file (kept mode 0600) or use --key-encryption-key-file")
	fl.MarkHidden("key-encryption-key")
	markSecret(fl, "key-encryption-key", secretValue)
	fl.StringVar(&k.kekFile, "key-encryption-key-file", "",
		"file holding the 32-byte key that encrypts signing keys at rest (raw or base64); or set "+kekEnv+
			" to its base64 (never a flag: the process list would show it). With neither, a SQLite database gets "+
			kekFileName+" generated beside its file (development only); PostgreSQL needs one")
}

// kekSource is where the key-encryption key comes from, as source checked
// it: the key itself (KEYWARD_KEY_ENCRYPTION_KEY), a file
// (--key-encryption-key-file), or, with neither, keyward.kek beside the
// SQLite database at sqlitePath.
type kekSource struct {
	key        []byte
	file       string
	sqlitePath string
}

// source checks the flags against the database dsn, before anything is
// opened: at most one of the key itself and --key-encryption-key-file, a
// well-formed key, and one of the two for a PostgreSQL database, which has
// no place beside it for a file. from names where the key came from in
// errors: KEYWARD_KEY_ENCRYPTION_KEY, or the configuration file.
func (k *kekFlags) source(dsn, from string) (kekSource, error) {
	switch {
	case k.kek != "" && k.kekFile != "":
		return kekSource{}, fmt.Errorf("set only one of %s and --key-encryption-key-file", from)
	case k.kek != "":
		kek, err := keys.ParseKEK(k.kek)
		if err != nil {
			return kekSource{}, fmt.Errorf("%s: %w", from, err)
		}
		return kekSource{key: kek}, nil
	case k.kekFile != "":
		return kekSource{file: k.kekFile}, nil
	}
	dbPath, ok := storage.SQLitePath(dsn)
	if !ok {
		return kekSource{}, fmt.Errorf("a PostgreSQL deployment needs --key-encryption-key-file or %s (32 random bytes, e.g. from: head -c32 /dev/urandom | base64)", kekEnv)
	}
	return kekSource{sqlitePath: dbPath}, nil
}

// load checks the flags (source) and returns the key-encryption key; the
// keys commands use it.
func (k *kekFlags) load(a *app, log *slog.Logger) ([]byte, error) {
	src, err := k.source(a.database, a.origin("key-encryption-key"))
	if err != nil {
		return nil, err
	}
	return src.load(log)
}

// load returns the key-encryption key: the one given, the one in the file,
// or, for a SQLite database given neither, keyward.kek beside the database
// file, generated there (mode 0600, with a warning) the first time.
func (s kekSource) load(log *slog.Logger) ([]byte, error) {
	switch {
	case s.key != nil:
		return s.key, nil
	case s.file != "":
		kek, err := keys.ReadKEKFile(s.file)
		if err != nil {
			return nil, fmt.Errorf("--key-encryption-key-file: %w", err)
		}
		warnShared(log, "the key-encryption key file", s.file)
		return kek, nil
	}
	path := filepath.Join(filepath.Dir(s.sqlitePath), kekFileName)
	if old, ok := oldKEK(path); ok {
		kek, err := keys.ReadKEKFile(old)
		if err != nil {
			return nil, fmt.Errorf("key-encryption key: %w", err)
		}
		log.Warn("using "+kekFileName+" from the working directory, where earlier versions generated it; move it beside the database",
			"file", old, "move_to", path)
		warnShared(log, "the key-encryption key file", old)
		return kek, nil
	}
	kek, generated, err := keys.LoadKEK("", "", path)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	if generated {
		log.Warn("generated a key-encryption key beside the database; production must supply its own with --key-encryption-key-file or "+kekEnv,
			"file", path)
	} else {
		warnShared(log, "the key-encryption key file", path)
	}
	return kek, nil
}

// oldKEK finds keyward.kek in the working directory, where keyward
// generated it before it went beside the database, when there is none at
// beside: using it spares an upgraded deployment a fresh key that its
// stored signing keys were not encrypted with.
func oldKEK(beside string) (string, bool) {
	if _, err := os.Stat(beside); !errors.Is(err, fs.ErrNotExist) {
		return "", false
	}
	if fi, err := os.Stat(kekFileName); err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return kekFileName, true
}

// warnShared logs a warning when a file holding secrets is open to other
// users than its owner. Keyward creates its files 0600 and leaves the mode
// of existing ones alone: the operator may mean it (a group for backups).
func warnShared(log *slog.Logger, what, path string) {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	log.Warn(what+" is open to other users than its owner; chmod 600 it unless that is meant",
		"file", path, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
}

// warnSharedDatabase runs warnShared on a SQLite database's files: the
// database, and its -wal and -shm files, which hold recent writes.
func warnSharedDatabase(log *slog.Logger, dsn string) {
	path, ok := storage.SQLitePath(dsn)
	if !ok {
		return
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		warnShared(log, "the SQLite database", f)
	}
}
