// Command retain is the lifecycle email scheduler: it lints and previews campaign
// files, and (in later commands) tracks customers and sends their emails.
//
// This file only parses the command line and dispatches; each command lives in a
// file named after it.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit codes shared by every command.
const (
	exitOK       = 0
	exitProblems = 1 // the command ran and found problems (lint errors, a failed render)
	exitUsage    = 2 // the command line itself is wrong
)

// command is one subcommand of retain.
type command struct {
	name    string
	summary string
	// usage is the synopsis after "retain"; help the text after the flag list.
	usage, help string
	run         func(c *command, e *env, args []string) int
}

// env is what a command may touch: its arguments' world, injected so tests run the
// real commands in-process.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

// with returns e with the variable name set to value.
func (e *env) with(name, value string) *env {
	get := e.getenv
	return &env{stdout: e.stdout, stderr: e.stderr, getenv: func(k string) string {
		if k == name {
			return value
		}
		return get(k)
	}}
}

var commands = []*command{lintCmd, previewCmd, sendTestCmd, planCmd, impactCmd, eventCmd, importCmd, customerCmd, suppressCmd, workerCmd, schedulerCmd, webCmd, devCmd, reportCmd, migrateCmd, dkimCmd, inboundCmd, campaignCmd, broadcastCmd}

func main() {
	os.Exit(run(os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}))
}

func run(args []string, e *env) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c := find(args[1]); c != nil {
				return c.run(c, e, []string{"--help"})
			}
			fmt.Fprintf(e.stderr, "retain: unknown command %q\n", args[1])
			return exitUsage
		}
		usage(e.stdout)
		return exitOK
	case "version", "--version":
		fmt.Fprintln(e.stdout, "retain", buildVersion())
		return exitOK
	}
	c := find(name)
	if c == nil {
		fmt.Fprintf(e.stderr, "retain: unknown command %q%s\nRun 'retain help' for the list of commands.\n", name, suggestCommand(name))
		return exitUsage
	}
	return c.run(c, e, args[1:])
}

func find(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func suggestCommand(name string) string {
	for _, c := range commands {
		if strings.HasPrefix(c.name, name) || strings.HasPrefix(name, c.name) {
			return fmt.Sprintf(" (did you mean %q?)", c.name)
		}
	}
	return ""
}

func usage(w io.Writer) {
	fmt.Fprint(w, `retain schedules lifecycle emails written as Markdown campaign files.

Usage:
  retain <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'retain help <command>' or 'retain <command> --help' for details.
Campaigns live in campaigns/ (lifecycle.yaml and one folder per campaign) and
layouts in templates/; see the README.
`)
}

// flags returns a FlagSet for c; parse prints its errors and help.
func (c *command) flags() *flag.FlagSet {
	fs := flag.NewFlagSet("retain "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parse parses args, allowing flags after positional arguments. It prints help and
// returns ok=false with the exit code when parsing should stop the command.
func (c *command) parse(fs *flag.FlagSet, e *env, args []string) (pos []string, code int, ok bool) {
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			c.printHelp(e.stdout, fs)
			return nil, exitOK, false
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "retain %s: %v\nUsage: retain %s\nRun 'retain %s --help' for details.\n", c.name, err, c.usage, c.name)
			return nil, exitUsage, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, exitOK, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usageError reports a wrong command line and returns exitUsage.
func (c *command) usageError(e *env, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "retain %s: %s\nUsage: retain %s\n", c.name, fmt.Sprintf(format, args...), c.usage)
	return exitUsage
}

func (c *command) printHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: retain %s\n\n%s.\n", c.usage, c.summary)
	var any bool
	fs.VisitAll(func(*flag.Flag) { any = true })
	if any {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if c.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.help))
	}
}
