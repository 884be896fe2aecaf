// Package ingest reads customers and events from the files marketers and operators
// give retain — a customer file (JSON), JSONL with one customer per line, and CSV —
// and checks every record against lifecycle.yaml: declared attributes with their
// types, known stages, IANA time zones, events with a name and a time.
//
// It reads and validates only; applying records (the store, the engine) is the
// caller's. Every bad record comes back with its line (and column where known) so an
// import can report it and keep the good ones.
package ingest
