package main

// Server mode (-serve SYSTEM): the bench binary serves one system in its own
// process. It prints "addr HOST:PORT" on stdout once listening (followed by
// " peer ID" when -connect made it connect onward), then answers each
// "stats" line on stdin with "stats MALLOCS" (runtime.MemStats.Mallocs, so
// the client can take the server's allocations over a window) and each "cpu"
// line with "cpu NANOSECONDS" (its getrusage user+system time), and shuts
// down when stdin closes (its parent is done or died).
//
// Besides the systems, -serve takes "tcpcopy" (the plain TCP source of the
// stream figures), and "trellis" takes -connect ADDR and -peer-id ID: the
// relay B of the routing figures, connected onward to the node at ADDR, with
// a router sending calls for that node and for ID (the caller A) straight to
// them.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type serverOpts struct {
	name, addr             string
	cpuprofile, memprofile string
	connect                string // trellis only: connect onward to this address (the relay)
	peerID                 string // with connect: the caller's node ID, for the relay's router
}

func runServer(o serverOpts) error {
	s := findSystem(o.name)
	if s == nil && o.name != "tcpcopy" {
		return fmt.Errorf("unknown system %q", o.name)
	}
	if o.connect != "" && o.name != "trellis" {
		return fmt.Errorf("-connect is for -serve trellis only")
	}
	stopProfiles, err := startProfiles(o.cpuprofile, o.memprofile)
	if err != nil {
		return err
	}
	log.SetOutput(io.Discard) // net/rpc logs its listener closing
	var (
		a    string
		stop func()
		info string
	)
	switch {
	case o.name == "tcpcopy":
		a, stop, err = serveTCPCopy(o.addr)
	case o.connect != "":
		a, stop, info, err = serveRelay(o.addr, o.connect, o.peerID)
	default:
		a, stop, err = s.serve(o.addr)
	}
	if err != nil {
		return err
	}
	fmt.Printf("addr %s%s\n", a, info)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "stats":
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Printf("stats %d\n", ms.Mallocs)
		case "cpu":
			fmt.Printf("cpu %d\n", int64(selfCPU()))
		}
	}
	stop()
	return stopProfiles()
}

// startProfiles starts a CPU profile (if cpu is set) and returns a function
// that stops it and writes an allocation profile (if mem is set).
func startProfiles(cpu, mem string) (func() error, error) {
	var cf *os.File
	if cpu != "" {
		f, err := os.Create(cpu)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		cf = f
	}
	return func() error {
		var errs []error
		if cf != nil {
			pprof.StopCPUProfile()
			errs = append(errs, cf.Close())
		}
		if mem != "" {
			f, err := os.Create(mem)
			if err != nil {
				return err
			}
			errs = append(errs, pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
		}
		return errors.Join(errs...)
	}, nil
}

// serverProc is a server child process, seen from the client process.
type serverProc struct {
	cmd   *exec.Cmd
	stdin interface {
		Write([]byte) (int, error)
		Close() error
	}
	out  *bufio.Reader
	addr string
	peer string // the " peer ID" of a relay's first line
}

// startServerProc runs this binary as the server of system name (or
// "tcpcopy"); extra are more flags for it.
func startServerProc(name, cpuprofile, memprofile string, extra ...string) (*serverProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := append([]string{"-serve", name, "-addr", "127.0.0.1:0"}, extra...)
	if cpuprofile != "" {
		args = append(args, "-cpuprofile", cpuprofile)
	}
	if memprofile != "" {
		args = append(args, "-memprofile", memprofile)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sp := &serverProc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	line, err := sp.out.ReadString('\n')
	if err != nil {
		sp.close()
		return nil, fmt.Errorf("%s server: %v", name, err)
	}
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "addr" {
		sp.close()
		return nil, fmt.Errorf("%s server: unexpected %q", name, line)
	}
	sp.addr = f[1]
	if len(f) == 4 && f[2] == "peer" {
		sp.peer = f[3]
	}
	return sp, nil
}

// selfCPU asks the server for its user+system CPU time (getrusage: finer
// than the 10 ms ticks of /proc/PID/stat).
func (sp *serverProc) selfCPU() (time.Duration, error) {
	if _, err := sp.stdin.Write([]byte("cpu\n")); err != nil {
		return 0, err
	}
	line, err := sp.out.ReadString('\n')
	if err != nil {
		return 0, err
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(line), "cpu ")
	if !ok {
		return 0, fmt.Errorf("server: unexpected %q", line)
	}
	ns, err := strconv.ParseInt(v, 10, 64)
	return time.Duration(ns), err
}

// mallocs asks the server for its MemStats.Mallocs.
func (sp *serverProc) mallocs() (uint64, error) {
	if _, err := sp.stdin.Write([]byte("stats\n")); err != nil {
		return 0, err
	}
	line, err := sp.out.ReadString('\n')
	if err != nil {
		return 0, err
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(line), "stats ")
	if !ok {
		return 0, fmt.Errorf("server: unexpected %q", line)
	}
	return strconv.ParseUint(v, 10, 64)
}

// clockTick is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTick = 10 * time.Millisecond

// cpu returns the server's user+system CPU time from /proc/PID/stat.
func (sp *serverProc) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", sp.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("server: cannot parse /proc stat %q", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("server: short /proc stat %q", s)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * clockTick, nil
}

// close closes the server's stdin and waits for it to exit.
func (sp *serverProc) close() error {
	sp.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- sp.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(15 * time.Second):
		sp.cmd.Process.Kill()
		<-done
		return errors.New("server did not exit; killed")
	}
}

// procIO returns the read and write system calls made so far by process
// pid (0: this process), from /proc/PID/io.
func procIO(pid int) (reads, writes uint64, err error) {
	name := "/proc/self/io"
	if pid != 0 {
		name = fmt.Sprintf("/proc/%d/io", pid)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
		switch k {
		case "syscr":
			reads, err = strconv.ParseUint(v, 10, 64)
		case "syscw":
			writes, err = strconv.ParseUint(v, 10, 64)
		}
		if err != nil {
			return 0, 0, err
		}
	}
	return reads, writes, nil
}

// selfCPU returns this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
