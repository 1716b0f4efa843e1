//! sockspec as PID 1 of a throwaway Linux guest (ci/kernels.sh boots other
//! kernels under QEMU with an initramfs holding only sockspec and the cases).
//! Built only with the `guest` feature, which ci/kernels.sh turns on.
//!
//! It mounts /proc, brings `lo` up, runs the whole suite on this kernel,
//! prints the results to the console between markers — gzip, then base64, so
//! that megabytes of JSON cross an emulated serial line in a moment — and
//! ends the machine with a reboot, which QEMU's `-no-reboot` turns into an
//! exit (a power-off would need ACPI, which the guests boot without).

#[cfg(all(target_os = "linux", feature = "guest"))]
use std::io::Write;

/// The marker line before the results on the console.
pub const BEGIN: &str = "=====SOCKSPEC RESULTS BEGIN (json, gzip, base64)=====";
/// The marker line after the results on the console.
pub const END: &str = "=====SOCKSPEC RESULTS END=====";

/// Whether this process is the guest's init. Being PID 1 is not enough (a
/// container's entry point is PID 1 too): ci/kernels.sh also puts
/// `SOCKSPEC_GUEST=1` on the kernel command line, which the kernel hands to
/// init as an environment variable
/// (<https://docs.kernel.org/admin-guide/kernel-parameters.html>).
pub fn is_init() -> bool {
    cfg!(all(target_os = "linux", feature = "guest"))
        && std::process::id() == 1
        && std::env::var_os("SOCKSPEC_GUEST").is_some_and(|v| v == "1")
}

/// Runs the suite as init and ends the machine; never returns.
#[cfg(all(target_os = "linux", feature = "guest"))]
pub fn run_as_init() -> ! {
    if let Err(e) = run() {
        println!("sockspec guest: {e}");
    }
    let _ = std::io::stdout().flush();
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    // Both failed: as PID 1 we must not return.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

#[cfg(all(target_os = "linux", feature = "guest"))]
fn run() -> Result<(), String> {
    use base64::Engine as _;
    use nix::mount::{MsFlags, mount};
    let _ = std::fs::create_dir_all("/proc");
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| format!("mounting /proc: {e}"))?;
    let _ = std::fs::create_dir_all("/dev");
    let _ = mount(
        Some("devtmpfs"),
        "/dev",
        Some("devtmpfs"),
        MsFlags::empty(),
        None::<&str>,
    );
    // Where the time goes (ci/kernels.sh reports it): seconds since boot.
    let uptime = || {
        std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|t| t.split_whitespace().next().map(str::to_owned))
            .unwrap_or_default()
    };
    println!("sockspec guest: init {} s after boot", uptime());
    load_modules();
    crate::sys::bring_up_loopback().map_err(|e| format!("bringing lo up: {e}"))?;
    warm_up();
    let platform = crate::Platform::current();
    // Every case, judged on Linux: the other OSes' files are not read
    // (loading them took half a second of the guest's time under TCG).
    // As `sockspec run`: observed outcomes of steps the cases no longer
    // check are left out, with a warning.
    let scope = crate::Scope {
        tests: None,
        os: Some(platform.os),
        set_aside_stale: true,
    };
    let suite = crate::Suite::load_scoped(std::path::Path::new("/cases"), &scope)
        .map_err(|e| e.to_string())?;
    for w in suite.expectations.set_aside_warnings() {
        println!("sockspec guest: {w}");
    }
    println!(
        "sockspec guest: {} tests on {} {} (loaded {} s after boot)",
        suite.tests.len(),
        platform.os,
        platform.release,
        uptime()
    );
    // Workers: SOCKSPEC_JOBS=N on the kernel command line, else one per CPU.
    let jobs = std::env::var("SOCKSPEC_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .filter(|&j: &usize| j > 0)
        .unwrap_or_else(crate::run::default_jobs);
    let opts = crate::run::Options {
        label: Some(format!("linux {} (qemu)", platform.release)),
        jobs,
        ..crate::run::Options::default()
    };
    let results = crate::run::run(&suite, &platform, &opts, |_| {});
    println!(
        "sockspec guest: {} pass, {} fail, {} error, {} skip in {:.1} s",
        results.summary.pass,
        results.summary.fail,
        results.summary.error,
        results.summary.skip,
        results.run.duration_ms / 1000.0
    );
    let json = serde_json::to_vec(&results).map_err(|e| e.to_string())?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json).map_err(|e| e.to_string())?;
    let packed =
        base64::engine::general_purpose::STANDARD.encode(gz.finish().map_err(|e| e.to_string())?);
    println!(
        "sockspec guest: results {} bytes of JSON, {} packed, {} s after boot",
        json.len(),
        packed.len(),
        uptime()
    );
    let mut block = format!("{BEGIN}\n").into_bytes();
    for chunk in packed.as_bytes().chunks(76) {
        block.extend_from_slice(chunk);
        block.push(b'\n');
    }
    block.extend_from_slice(format!("{END}\n").as_bytes());
    let mut out = std::io::stdout().lock();
    if debugcon::write(&block) {
        writeln!(out, "sockspec guest: results on the debug console").map_err(|e| e.to_string())?;
    } else {
        out.write_all(&block).map_err(|e| e.to_string())?;
    }
    writeln!(out, "sockspec guest: done {} s after boot", uptime()).map_err(|e| e.to_string())?;
    Ok(())
}

/// Makes the kernel draw its lookup-hash secrets before the workers start.
/// Each is drawn on first use (`net_get_random_once` in `inet_ehashfn`,
/// `inet6_ehashfn`, `udp_ehashfn`, `udp6_ehashfn`), and a work item then
/// turns its static key on by patching kernel text while other CPUs run that
/// code. Under QEMU's TCG that patching once crashed a 6.12 guest mid-suite
/// (`Oops: int3` in `udp_ehashfn`, from a worker's UDP SO_REUSEPORT lookup):
/// done here, on a quiet machine, and waited for, nothing runs beside it.
/// Nothing a test observes depends on when the secrets are drawn.
/// <https://elixir.bootlin.com/linux/v6.12/source/include/linux/once.h>
#[cfg(all(target_os = "linux", feature = "guest"))]
fn warm_up() {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::net::SocketAddr;
    let group = |domain: Domain,
                 ty: Type,
                 proto: Protocol,
                 at: SocketAddr|
     -> std::io::Result<Vec<Socket>> {
        let first = Socket::new(domain, ty, Some(proto))?;
        first.set_reuse_port(true)?;
        first.bind(&at.into())?;
        let bound = first.local_addr()?;
        let second = Socket::new(domain, ty, Some(proto))?;
        second.set_reuse_port(true)?;
        second.bind(&bound)?;
        Ok(vec![first, second])
    };
    for at in ["127.0.0.1:0", "[::1]:0"] {
        let Ok(at) = at.parse::<SocketAddr>() else {
            continue;
        };
        let domain = Domain::for_address(at);
        // UDP: a datagram to a reuseport group (udp_ehashfn / udp6_ehashfn).
        let _ = group(domain, Type::DGRAM, Protocol::UDP, at).and_then(|g| {
            let to = g[0].local_addr()?;
            let tx = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
            tx.send_to(b"x", &to)
        });
        // TCP: a connection to a reuseport group (inet_ehashfn / inet6_ehashfn).
        let _ = group(domain, Type::STREAM, Protocol::TCP, at).and_then(|g| {
            g.iter().try_for_each(|s| s.listen(4))?;
            let c = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
            c.connect(&g[0].local_addr()?)
        });
    }
    // The keys are turned on by a work item (`once_deferred`); let it run.
    std::thread::sleep(std::time::Duration::from_millis(100));
}

/// QEMU's ISA debug console (`-debugcon`, I/O port 0xe9): a byte written
/// there lands in the host's file at once. The serial console takes an
/// interrupt per 16 bytes, which under TCG made printing the packed results
/// (200 KB) take 0.8 s of the guest's 10; this takes 0.3 s (QEMU writes each
/// byte to the file on its own).
/// <https://www.qemu.org/docs/master/system/invocation.html> (`-debugcon`)
#[cfg(all(target_os = "linux", feature = "guest"))]
mod debugcon {
    /// Writes `bytes` to the debug console; false (nothing written) where
    /// there is none: another architecture, no port access, or no device
    /// (reading an absent port gives 0xff; QEMU's debugcon answers 0xe9).
    #[cfg(target_arch = "x86_64")]
    pub fn write(bytes: &[u8]) -> bool {
        const PORT: u16 = 0xe9;
        // SAFETY: ioperm(2) grants this process port 0xe9 only (we are root,
        // PID 1 of a throwaway guest); `in`/`rep outsb` then touch that port
        // alone and read `bytes` within its bounds.
        unsafe {
            if libc::ioperm(PORT.into(), 1, 1) != 0 {
                return false;
            }
            let answer: u8;
            std::arch::asm!("in al, dx", out("al") answer, in("dx") PORT, options(nomem, nostack, preserves_flags));
            if answer != 0xe9 {
                return false;
            }
            std::arch::asm!(
                "rep outsb",
                in("dx") PORT,
                inout("rsi") bytes.as_ptr() => _,
                inout("rcx") bytes.len() => _,
                options(nostack, preserves_flags, readonly)
            );
        }
        true
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn write(_bytes: &[u8]) -> bool {
        false
    }
}

/// Loads the kernel modules ci/kernels.sh put in /modules (veth: Debian's
/// cloud kernels build it as a module, and IPv6 multicast needs a veth pair).
/// A module that does not load leaves its tests to skip, saying why.
/// <https://man7.org/linux/man-pages/man2/finit_module.2.html>
#[cfg(all(target_os = "linux", feature = "guest"))]
fn load_modules() {
    use std::os::fd::AsRawFd;
    let Ok(dir) = std::fs::read_dir("/modules") else {
        return;
    };
    let mut paths: Vec<_> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let r = std::fs::File::open(&path).and_then(|f| {
            // SAFETY: finit_module(2) with a valid fd and an empty parameter string.
            let rc =
                unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), c"".as_ptr(), 0) };
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
        match r {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => println!("sockspec guest: loading {}: {e}", path.display()),
        }
    }
}

/// Stands in for the guest's init in builds without the `guest` feature: never called, since
/// [`is_init`] is false there.
#[cfg(not(all(target_os = "linux", feature = "guest")))]
pub fn run_as_init() -> ! {
    unreachable!("only a Linux build with the `guest` feature boots sockspec as init")
}
