package runtime

import (
	"sync"
	"sync/atomic"
)

// mutex is sync.Mutex; the alias keeps callCtx's field list readable.
type mutex = sync.Mutex

// maxIdleWorkers bounds the workers kept waiting for calls.
const maxIdleWorkers = 64

// workerPool runs calls on goroutines that outlive a call, so a node under
// load does not start a goroutine per call. idle counts the workers that are
// free (or about to be: a worker counts itself free as soon as its handler
// returns, while it sends the reply); run reserves one by decrementing it
// and hands it the call, or starts a new worker if none is free, so a slow
// handler never delays another call. Workers beyond maxIdleWorkers exit
// when they run out of work.
type workerPool struct {
	work chan *ServerCall // unbuffered: received only by reserved workers
	quit chan struct{}
	idle atomic.Int32
	wg   sync.WaitGroup
	mu   sync.Mutex // orders wg.Add against stop's wg.Wait
	done bool
}

func (w *workerPool) init() {
	w.work = make(chan *ServerCall)
	w.quit = make(chan struct{})
}

// run serves sc on a free worker or a new one.
func (w *workerPool) run(sc *ServerCall) {
	for {
		n := w.idle.Load()
		if n <= 0 {
			break
		}
		if w.idle.CompareAndSwap(n, n-1) {
			select {
			case w.work <- sc: // the reserved worker is about to receive
			case <-w.quit:
				go sc.serve(nil)
			}
			return
		}
	}
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		go sc.serve(nil) // the node is stopping; this call is still counted in Node.serving
		return
	}
	w.wg.Add(1)
	w.mu.Unlock()
	go w.loop(sc)
}

// ready counts the calling worker free, unless enough are; it reports
// whether the worker stays.
func (w *workerPool) ready() bool {
	for {
		n := w.idle.Load()
		if n >= maxIdleWorkers {
			return false
		}
		if w.idle.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (w *workerPool) loop(sc *ServerCall) {
	defer w.wg.Done()
	for {
		if !sc.serve(w) {
			return
		}
		select {
		case sc = <-w.work:
		case <-w.quit:
			return
		}
	}
}

// stop ends the free workers and waits for all workers to end.
func (w *workerPool) stop() {
	w.mu.Lock()
	if !w.done {
		w.done = true
		close(w.quit)
	}
	w.mu.Unlock()
	w.wg.Wait()
}
