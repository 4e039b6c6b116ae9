//! Teardown layer 3: SIGINT, SIGTERM and SIGHUP tear down this process's VMs, then end the
//! process as the signal would have (so the shell, cargo or nextest sees "interrupted").
//!
//! The handler only writes the signal number to a pipe (the one thing a signal handler may
//! safely do); a thread reads it, undoes this process's ledger entries (newest first) as the
//! sweeper would, restores the default action and re-sends the signal. A second signal during that
//! teardown ends the process at once; the kernel layer (PDEATHSIG) still stops the VMs then.
//! A signal some other code already handles, or that is ignored (`nohup`), is left as it is.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Once;

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
static TEARING_DOWN: AtomicBool = AtomicBool::new(false);

/// Installs the handlers once per process.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return;
        }
        let read_fd = fds[0];
        PIPE_WRITE.store(fds[1], Ordering::SeqCst);
        let spawned = std::thread::Builder::new()
            .name("vmtest-signals".into())
            .spawn(move || teardown_thread(read_fd));
        if spawned.is_err() {
            return;
        }
        for sig in SIGNALS {
            // SAFETY: sigaction with a zeroed struct, our handler and an empty mask.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                    || old.sa_sigaction != libc::SIG_DFL
                {
                    continue;
                }
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(sig, &action, std::ptr::null_mut());
            }
        }
    });
}

extern "C" fn handler(sig: libc::c_int) {
    // SAFETY: only async-signal-safe calls (atomics, write, signal, raise).
    unsafe {
        if TEARING_DOWN.swap(true, Ordering::SeqCst) {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
            return;
        }
        let fd = PIPE_WRITE.load(Ordering::SeqCst);
        let byte = sig as u8;
        if fd < 0 || libc::write(fd, (&byte as *const u8).cast(), 1) != 1 {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

fn teardown_thread(read_fd: libc::c_int) {
    let mut byte = 0u8;
    loop {
        // SAFETY: reads one byte into `byte`.
        let n = unsafe { libc::read(read_fd, (&mut byte as *mut u8).cast(), 1) };
        if n == 1 {
            break;
        }
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return;
    }
    let sig = libc::c_int::from(byte);
    let signame = match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    };
    tracing::warn!("interrupted by {signame}: tearing down this process's VMs");
    let reaped = crate::state::sweep::reap_own();
    tracing::warn!(
        "interrupted by {signame}: tore down {} VM(s){}{}",
        reaped.len(),
        if reaped.is_empty() { "" } else { ": " },
        reaped.join(", ")
    );
    // SAFETY: restores the default action and re-sends the signal to the whole process.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::kill(libc::getpid(), sig);
    }
    // The default action of all three signals ends the process; never return meanwhile.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}
