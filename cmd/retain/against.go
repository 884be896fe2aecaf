package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// against resolves the --against value of lint, impact and preview: a folder
// (a project or campaigns folder, as for lint) or a git revision of the
// repository that holds cur. A revision is read with `git archive` into a
// temporary folder, so the work tree and the repository are left untouched;
// call the returned cleanup when done.
func against(ref string, cur dirs) (old dirs, cleanup func(), err error) {
	if info, statErr := os.Stat(ref); statErr == nil && info.IsDir() {
		old, err = resolveDirs(ref, "")
		return old, func() {}, err
	}
	tmp, err := os.MkdirTemp("", "retain-against-")
	if err != nil {
		return dirs{}, nil, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	old, err = extractAt(ref, cur, tmp)
	if err != nil {
		cleanup()
		return dirs{}, nil, err
	}
	return old, cleanup, nil
}

// extractAt writes the campaigns and templates folders of cur as they were at
// git revision ref into tmp, and returns where they are there.
func extractAt(ref string, cur dirs, tmp string) (dirs, error) {
	if strings.HasPrefix(ref, "-") {
		return dirs{}, fmt.Errorf("--against %s: a git revision cannot start with -", ref)
	}
	absCampaigns, err := filepath.Abs(cur.campaigns)
	if err != nil {
		return dirs{}, err
	}
	top, err := git(absCampaigns, "rev-parse", "--show-toplevel")
	if err != nil {
		return dirs{}, fmt.Errorf("--against %s: %s is not in a git repository (give a folder instead, or run inside the campaigns repository): %v", ref, cur.campaigns, err)
	}
	if _, err := git(top, "rev-parse", "--verify", "--quiet", ref+"^{commit}"); err != nil {
		return dirs{}, fmt.Errorf("--against %s: no such git revision or folder (try a branch such as origin/main, a tag or a commit)", ref)
	}
	var old dirs
	var paths []string
	for _, p := range []struct {
		dir string
		out *string
	}{{cur.campaigns, &old.campaigns}, {cur.templates, &old.templates}} {
		abs, err := filepath.Abs(p.dir)
		if err != nil {
			return dirs{}, err
		}
		abs, _ = filepath.EvalSymlinks(abs)
		realTop, _ := filepath.EvalSymlinks(top)
		rel, err := filepath.Rel(realTop, abs)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			// Outside the repository (a templates folder elsewhere): it is
			// the same in both versions.
			*p.out = p.dir
			continue
		}
		*p.out = filepath.Join(tmp, rel)
		if err := os.MkdirAll(*p.out, 0o755); err != nil {
			return dirs{}, err
		}
		paths = append(paths, filepath.ToSlash(rel))
	}
	cmd := exec.Command("git", append([]string{"archive", "--format=tar", ref, "--"}, paths...)...)
	cmd.Dir = top
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return dirs{}, err
	}
	if err := cmd.Start(); err != nil {
		return dirs{}, fmt.Errorf("--against %s: git: %w", ref, err)
	}
	untarErr := untar(out, tmp)
	io.Copy(io.Discard, out) // let git finish even when untar stopped early
	if err := cmd.Wait(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "did not match any files") {
			// The folder did not exist at ref: an empty folder stands for it.
			return old, nil
		}
		return dirs{}, fmt.Errorf("--against %s: git archive: %s", ref, msg)
	}
	return old, untarErr
}

// untar writes the regular files of a tar stream under dir.
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		if name == ".." || strings.HasPrefix(name, ".."+string(filepath.Separator)) || filepath.IsAbs(name) {
			return fmt.Errorf("git archive: unexpected path %q", h.Name)
		}
		path := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}

// git runs git in dir and returns its trimmed output.
func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", errors.New(msg)
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// loadAgainst loads the campaigns that --against names, for command c. A
// revision or folder that cannot be read is a usage error; problems in the
// campaigns there do not stop the command (they are what customers were
// scheduled by): they are counted on stderr, followed by note, which says how
// the command treats them, and the set is used as far as it loaded. On failure
// it returns nil and the exit code.
func loadAgainst(c *command, e *env, ref string, cur dirs, note string) (*loaded, int) {
	old, cleanup, err := against(ref, cur)
	if err != nil {
		return nil, c.usageError(e, "%v", err)
	}
	defer cleanup()
	l, probs, err := loadCampaigns(old)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain %s: the campaigns at %s: %v\n", c.name, ref, err)
		return nil, exitProblems
	}
	if len(probs) > 0 {
		fmt.Fprintf(e.stderr, "retain %s: the campaigns at %s have %s; %s\n", c.name, ref, plural(len(probs), "problem"), note)
	}
	return l, exitOK
}
