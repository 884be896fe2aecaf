package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

// flagLineRE matches a flag line of the "Flags:" section that flag.PrintDefaults
// writes: two spaces, a dash and the flag name.
var flagLineRE = regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9-]*)`)

// TestCLIReferenceNamesEveryFlag runs every command with --help, as a user would,
// and checks that docs/cli.md names the command (retain <command>) and each flag of
// its "Flags:" section (--flag), so the reference cannot fall behind the commands.
func TestCLIReferenceNamesEveryFlag(t *testing.T) {
	b, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			e := &env{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
			if code := run([]string{c.name, "--help"}, e); code != exitOK {
				t.Fatalf("retain %s --help: exit %d, stderr:\n%s", c.name, code, stderr.String())
			}
			if !strings.Contains(doc, "retain "+c.name) {
				t.Errorf("docs/cli.md does not mention retain %s", c.name)
			}
			flags := helpFlags(stdout.String())
			if len(flags) == 0 && strings.Contains(stdout.String(), "\nFlags:\n") {
				t.Errorf("retain %s --help has a Flags: section but no flag was found in it", c.name)
			}
			for _, f := range flags {
				if !strings.Contains(doc, "--"+f) {
					t.Errorf("docs/cli.md does not mention --%s of retain %s", f, c.name)
				}
			}
		})
	}
}

// helpFlags returns the flag names listed in the "Flags:" section of a command's help.
func helpFlags(help string) []string {
	_, section, ok := strings.Cut(help, "\nFlags:\n")
	if !ok {
		return nil
	}
	var names []string
	for _, line := range strings.Split(section, "\n") {
		if line == "" {
			break // the section ends at the first blank line
		}
		if m := flagLineRE.FindStringSubmatch(line); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}

// TestCIDocShowsTheCIFiles checks that docs/ci.md shows the shell form and the
// GitHub Actions workflow exactly as docs/ci/ holds them: the files are what
// testdata/script/ci.txtar runs, the page is what users copy.
func TestCIDocShowsTheCIFiles(t *testing.T) {
	doc, err := os.ReadFile("../../docs/ci.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ path, fence string }{{"ci/retain-ci.sh", "```sh\n"}, {"ci/retain.yml", "```yaml\n"}} {
		b, err := os.ReadFile("../../docs/" + f.path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), f.fence+string(b)+"```\n") {
			t.Errorf("docs/ci.md does not show docs/%s as it is: paste the file into its %q block", f.path, strings.TrimSpace(f.fence))
		}
	}
}
