//! `init`: an example environment appended to the project file.

use super::*;

/// The example `init` appends.
pub(super) fn example(env: &str) -> String {
    format!(
        r#"
# Environment {env}: two VMs on a LAN of their own. `vmtest-runner up {env}` brings it up and
# leaves it running, `vmtest-runner status` shows it, `vmtest-runner exec VM -- CMD` and
# `vmtest-runner ssh VM` get into its VMs, `vmtest-runner down {env}` removes it.
# See docs/environments.md for every key.

# An isolated LAN with DHCP; only the environment's VMs are on it.
[env.{env}.networks.lan]
kind = "isolated"

[env.{env}.vms.server]
image = "recipe:tiny"            # any image reference (docs/images.md)
memory = "256M"
nics = ["lan"]                   # a NIC on the LAN, besides the management NIC SSH uses

[env.{env}.vms.client]
image = "recipe:tiny"
memory = "256M"
nics = ["lan"]

# Provisioning: shell steps run over SSH once the VM is ready. `{{{{ vms.server.ip.lan }}}}`
# is a template reference: the server's address on the LAN, so the client comes up after it.
[[env.{env}.vms.client.provision]]
run = "echo '{{{{ vms.server.ip.lan }}}} server' > /tmp/server-address"
"#
    )
}

/// `vmtest-runner init`.
pub(crate) fn init(env: Option<String>, file: Option<PathBuf>) -> Result<ExitCode> {
    let path = match project_file(file.as_deref()) {
        Ok(path) => path,
        Err(_) if file.is_some() => file.clone().unwrap_or_default(),
        Err(_) => std::env::current_dir()
            .map_err(|e| format!("the current directory: {e}"))?
            .join(PROJECT_FILE),
    };
    let dir = std::fs::canonicalize(path.parent().unwrap_or(Path::new(".")))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let env = env.unwrap_or_else(|| name_from_dir(&dir));
    if !is_name(&env) {
        return Err(format!(
            "`{env}` is not an environment name: it starts with a-z and goes on with up to 30 \
             of a-z, 0-9 and `-`"
        ));
    }
    if path.is_file() {
        let declared = vmtest::Env::declared(&path).map_err(|e| e.to_string())?;
        if declared.contains(&env) {
            return Err(format!(
                "{} declares [env.{env}] already; name another: vmtest-runner init NAME",
                path.display()
            ));
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(example(&env).as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "appended environment {env} to {}; `vmtest-runner up {env}` brings it up",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
