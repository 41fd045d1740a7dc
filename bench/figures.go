package main

// The stream and routing figures (phases stream, route, p99): Trellis only,
// each beside its own baseline, measured after the echo table in the same
// run, in rounds that alternate the two sides of each figure.
//
//   - stream: a Trellis server process returns an io.Reader of -stream-mib
//     MiB (echo.Streamer.Dump, a Pattern) and the client process reads it to
//     the end; the baseline is a plain TCP copy of the same Pattern from a
//     server process of its own (-serve tcpcopy), over a connection kept
//     open, read by the same loop into the same sink (CRC-32C of every byte,
//     checked). MB/s, and client+server CPU per GiB.
//   - route: processes A (the client), B and C, A connected to B and B to C;
//     A's router sends calls for C to B, B's router maps A→A and C→C. One
//     caller, small echo calls, alternately direct A→B and routed A→C via B
//     (so that both see the same machine), p50 and p99 of each.
//   - p99: 64 callers (-callers) make small echo calls on the connection of
//     the stream figure; their p99 while one -busy-stream-mib MiB stream runs
//     on that connection against their p99 with no stream.
//
// Client modes: -client stream (the stream and p99 figures: it starts a
// Trellis server and a tcpcopy server) and -client route (it starts C, then
// B connected to C, and is A). They read one phase per line on stdin
// ("stream trellis", "stream tcp", "hop both", "p99 idle", "p99 stream")
// and answer each with a JSON XMeasure.

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/trellisrpc/trellis/bench/echo"
)

// streamBuf is the size of every read and write of the stream figures: the
// reader's buffer on both sides and the TCP copy's writes (the Trellis pump
// reads its source one frame, 256 KiB less an envelope, at a time).
const streamBuf = 256 << 10

// streamWarmup is read once before each measured stream, on either side.
const streamWarmup = 16 << 20

// An XMeasure is what a figure client measured in one phase of one round.
type XMeasure struct {
	Phase, Variant string

	// stream: Bytes read in Elapsed, and the CPU both processes spent.
	Bytes                int64         `json:",omitempty"`
	Elapsed              time.Duration `json:",omitempty"`
	ClientCPU, ServerCPU time.Duration `json:",omitempty"`

	// hop, p99: latency of the calls measured (hop: the direct ones).
	Calls    int           `json:",omitempty"`
	P50, P99 time.Duration `json:",omitempty"`
	// hop: the routed calls, made alternately with the direct ones.
	RoutedCalls          int           `json:",omitempty"`
	RoutedP50, RoutedP99 time.Duration `json:",omitempty"`

	// p99 stream: the stream that ran under the calls, over the window.
	StreamBytes   int64         `json:",omitempty"`
	StreamElapsed time.Duration `json:",omitempty"`
	StreamEnded   bool          `json:",omitempty"` // read to its end (else cut at the window)

	Err string `json:",omitempty"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// drain reads r to its end into buf and returns the byte count and their
// CRC-32C: the sink of both sides of the stream figure.
func drain(r io.Reader, buf []byte) (n int64, sum uint32, err error) {
	for {
		k, err := r.Read(buf)
		if k > 0 {
			sum = crc32.Update(sum, castagnoli, buf[:k])
			n += int64(k)
		}
		if err == io.EOF {
			return n, sum, nil
		}
		if err != nil {
			return n, sum, err
		}
	}
}

// patternSum returns the CRC-32C of the first n bytes of the Pattern.
func patternSum(n int64) uint32 {
	_, sum, _ := drain(echo.NewPattern(n), make([]byte, streamBuf))
	return sum
}

// checkStream verifies that n bytes with CRC sum are the Pattern of want bytes.
func checkStream(what string, n int64, sum uint32, want int64) error {
	if n != want {
		return fmt.Errorf("%s: read %d bytes, want %d", what, n, want)
	}
	if s := patternSum(n); s != sum {
		return fmt.Errorf("%s: %d bytes with CRC-32C %08x, want %08x", what, n, sum, s)
	}
	return nil
}

// serveTCPCopy is the server of the stream figure's baseline: on each
// connection, for each 8-byte length N it reads, it writes N bytes of the
// Pattern, streamBuf bytes per write.
func serveTCPCopy(addr string) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go tcpCopy(c)
		}
	}()
	return ln.Addr().String(), func() { ln.Close() }, nil
}

func tcpCopy(c net.Conn) {
	defer c.Close()
	buf := make([]byte, streamBuf)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		src := echo.NewPattern(int64(binary.LittleEndian.Uint64(hdr[:])))
		for {
			k, err := src.Read(buf)
			if k > 0 {
				if _, err := c.Write(buf[:k]); err != nil {
					return
				}
			}
			if err != nil {
				break
			}
		}
	}
}

// figureOpts are the sizes and windows of the figures.
type figureOpts struct {
	streamBytes, busyBytes int64
	p99Window              time.Duration
}

// serveLines runs one phase per line of stdin and answers each with a JSON
// XMeasure, until stdin closes or a phase fails.
func serveLines(run func(phase, variant string, m *XMeasure) error) error {
	out := json.NewEncoder(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	var failed error
	for in.Scan() && failed == nil {
		phase, variant, _ := strings.Cut(in.Text(), " ")
		m := XMeasure{Phase: phase, Variant: variant}
		failed = run(phase, variant, &m)
		if failed != nil {
			m.Err = failed.Error()
		}
		out.Encode(&m)
	}
	return failed
}
