package main

import "syscall"

// procAttr makes a server process die with the scenario that started it,
// even when the scenario is killed.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
