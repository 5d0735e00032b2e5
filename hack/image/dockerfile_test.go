package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// stage is what a Dockerfile's final stage makes of an image, as far as the
// test models a Dockerfile: the config it sets and where each file's bytes
// come from. An instruction, flag or base image the model does not know is an
// error, so that a Dockerfile change the test cannot judge fails it rather
// than passing unchecked.
type stage struct {
	config v1.Config
	files  map[string]source // path in the image, without a leading slash
}

// source is where a COPY takes a file from.
type source struct {
	stage string // the --from stage; "" for the build context
	path  string // in that stage, or in the context (the repository)
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

// parseDockerfile returns the final stage of the Dockerfile text, with
// context the directory its build context (COPY sources) is read from.
func parseDockerfile(text, context string) (stage, error) {
	var ins []instruction
	var cur *instruction
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		// Comment lines are dropped even inside a continuation, as Docker
		// does; parser directives (# syntax=) are comments here too.
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		cont := strings.HasSuffix(trimmed, `\`)
		trimmed = strings.TrimSpace(strings.TrimSuffix(trimmed, `\`))
		if cur == nil {
			cmd, args, _ := strings.Cut(trimmed, " ")
			cur = &instruction{line: i + 1, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		} else {
			cur.args += " " + trimmed
		}
		if !cont {
			ins = append(ins, *cur)
			cur = nil
		}
	}
	if cur != nil {
		ins = append(ins, *cur)
	}

	last := -1
	for i, in := range ins {
		if in.cmd == "FROM" {
			last = i
		}
	}
	if last < 0 {
		return stage{}, fmt.Errorf("no FROM")
	}
	from := strings.Fields(ins[last].args)
	for len(from) > 0 && strings.HasPrefix(from[0], "--platform=") {
		from = from[1:]
	}
	if len(from) == 0 || from[0] != "scratch" {
		return stage{}, fmt.Errorf("line %d: final stage FROM %q: the model knows the files and config of scratch only", ins[last].line, ins[last].args)
	}

	// What BuildKit's dockerfile2llb starts a stage FROM scratch with
	// (emptyImage): no files, WorkingDir "/" and a default PATH.
	st := stage{
		config: v1.Config{
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			WorkingDir: "/",
		},
		files: map[string]source{},
	}
	for _, in := range ins[last+1:] {
		if strings.Contains(in.args, "$") {
			return stage{}, fmt.Errorf("line %d: %s %s: variables are not modelled", in.line, in.cmd, in.args)
		}
		var err error
		switch in.cmd {
		case "COPY":
			err = st.copy(in.args, context)
		case "USER":
			st.config.User = in.args
		case "ENTRYPOINT":
			st.config.Entrypoint, err = command(in.args)
			// Setting ENTRYPOINT resets a CMD inherited from the base;
			// scratch has none, so there is nothing to reset.
		case "CMD":
			st.config.Cmd, err = command(in.args)
		case "WORKDIR":
			if path.IsAbs(in.args) {
				st.config.WorkingDir = path.Clean(in.args)
			} else {
				st.config.WorkingDir = path.Join(st.config.WorkingDir, in.args)
			}
		case "ENV":
			err = st.env(in.args)
		case "LABEL":
			err = st.label(in.args)
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				if st.config.ExposedPorts == nil {
					st.config.ExposedPorts = map[string]struct{}{}
				}
				st.config.ExposedPorts[p] = struct{}{}
			}
		case "STOPSIGNAL":
			st.config.StopSignal = in.args
		default:
			err = fmt.Errorf("not modelled in the final stage")
		}
		if err != nil {
			return stage{}, fmt.Errorf("line %d: %s %s: %w", in.line, in.cmd, in.args, err)
		}
	}
	return st, nil
}

// copy models COPY [--from=STAGE] SRC... DEST.
func (st *stage) copy(args, context string) error {
	fields := strings.Fields(args)
	from := ""
	for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
		flag, value, _ := strings.Cut(fields[0], "=")
		switch flag {
		case "--from":
			from = value
		case "--link":
			// Changes how the layer is made, not what it holds.
		default:
			return fmt.Errorf("flag %s is not modelled", flag)
		}
		fields = fields[1:]
	}
	if strings.HasPrefix(strings.Join(fields, " "), "[") {
		if err := json.Unmarshal([]byte(strings.Join(fields, " ")), &fields); err != nil {
			return err
		}
	}
	if len(fields) < 2 {
		return fmt.Errorf("want sources and a destination")
	}
	srcs, dest := fields[:len(fields)-1], fields[len(fields)-1]
	if len(srcs) > 1 && !strings.HasSuffix(dest, "/") {
		return fmt.Errorf("several sources need a destination directory ending in /")
	}
	for _, src := range srcs {
		if strings.ContainsAny(src, "*?[") {
			return fmt.Errorf("wildcard %q is not modelled", src)
		}
		if from != "" {
			// Another stage's file: the model cannot see into it, so it
			// takes the source for a file (a directory would be copied
			// with its contents).
			st.add(dest, path.Base(src), source{stage: from, path: src})
			continue
		}
		local := filepath.Join(context, filepath.FromSlash(src))
		info, err := os.Stat(local)
		if err != nil {
			return err
		}
		if !info.IsDir() {
			st.add(dest, path.Base(src), source{path: path.Clean(src)})
			continue
		}
		// A directory's contents are copied into dest.
		err = filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(local, p)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			st.files[strings.TrimPrefix(path.Join(dest, rel), "/")] = source{path: path.Join(src, rel)}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// add records the file base copied to dest: into it where dest names a
// directory (ends in /), as dest otherwise.
func (st *stage) add(dest, base string, src source) {
	p := dest
	if strings.HasSuffix(dest, "/") {
		p = path.Join(dest, base)
	}
	st.files[strings.TrimPrefix(path.Clean(p), "/")] = src
}

// env models ENV KEY=VALUE... (and the old ENV KEY VALUE).
func (st *stage) env(args string) error {
	pairs, err := keyValues(args)
	if err != nil {
		return err
	}
	for _, kv := range pairs {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, e := range st.config.Env {
			if strings.HasPrefix(e, k+"=") {
				st.config.Env[i], replaced = kv, true
			}
		}
		if !replaced {
			st.config.Env = append(st.config.Env, kv)
		}
	}
	return nil
}

// label models LABEL KEY=VALUE...
func (st *stage) label(args string) error {
	pairs, err := keyValues(args)
	if err != nil {
		return err
	}
	for _, kv := range pairs {
		k, v, _ := strings.Cut(kv, "=")
		if st.config.Labels == nil {
			st.config.Labels = map[string]string{}
		}
		st.config.Labels[k] = v
	}
	return nil
}

// keyValues splits KEY=VALUE pairs, unquoting double-quoted values, or takes
// the old form KEY VALUE as one pair.
func keyValues(args string) ([]string, error) {
	k, v, _ := strings.Cut(args, " ")
	if !strings.Contains(k, "=") {
		return []string{k + "=" + strings.TrimSpace(v)}, nil
	}
	var out []string
	for _, f := range strings.Fields(args) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("%q: quoted values with spaces are not modelled", f)
		}
		if strings.HasPrefix(v, `"`) {
			if !strings.HasSuffix(v, `"`) || len(v) < 2 {
				return nil, fmt.Errorf("%q: quoted values with spaces are not modelled", f)
			}
			v = v[1 : len(v)-1]
		}
		out = append(out, k+"="+v)
	}
	return out, nil
}

// command models the exec form (a JSON array) and the shell form of
// ENTRYPOINT and CMD.
func command(args string) ([]string, error) {
	if strings.HasPrefix(args, "[") {
		var out []string
		if err := json.Unmarshal([]byte(args), &out); err != nil {
			return nil, fmt.Errorf("exec form: %w", err)
		}
		return out, nil
	}
	return []string{"/bin/sh", "-c", args}, nil
}
