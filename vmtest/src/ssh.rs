//! SSH into the guest.

/// SSH access to one VM.
pub struct Ssh<'vm> {
    _vm: &'vm crate::Vm,
}

/// What a command returned.
#[derive(Debug, Clone)]
pub struct Output {
    /// The exit code, `None` if the command was killed by a signal.
    pub exit_code: Option<u32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl Ssh<'_> {
    /// Runs `argv` in the guest (each element quoted for the guest's shell) and collects its
    /// output.
    pub async fn run<I, S>(&self, argv: I) -> Result<Output, std::io::Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let _ = argv;
        todo!()
    }
}
