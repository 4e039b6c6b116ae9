//! `[env.E.networks.NAME]`: a network's declaration, and what a PXE network serves.

use serde::Deserialize;
use toml::Spanned;

use super::{Cx, NetworkDecl, PxeDecl};
use crate::error::Result;
use crate::spec::Network;

pub(super) fn network(cx: &Cx, name: Spanned<String>, raw: RawNetwork) -> Result<NetworkDecl> {
    let kinds = [
        ("isolated", Network::Isolated),
        ("pxe", Network::Pxe),
        ("user", Network::User),
    ];
    let net_name = cx.name("network", &name)?;
    let kind = cx.choice("kind", raw.kind.as_ref(), &kinds)?;
    let flag = |key: &str, value: Option<&Spanned<bool>>| -> Result<bool> {
        match value {
            Some(on) if kind == Network::User && *on.get_ref() => Err(cx.error(
                on.span(),
                format!(
                    "`{key}` needs `kind = \"isolated\"` or `kind = \"pxe\"`: the user-mode \
                     network has no segment of its own; remove it, or change `kind`"
                ),
            )),
            value => Ok(value.is_some_and(|v| *v.get_ref())),
        }
    };
    let dhcp_router = flag("dhcp_router", raw.dhcp_router.as_ref())?;
    let dhcp_dns = flag("dhcp_dns", raw.dhcp_dns.as_ref())?;
    let capture = flag("capture", raw.capture.as_ref())?;
    let given: Vec<(&str, &Spanned<String>)> = [
        ("pxe_kernel", &raw.pxe_kernel),
        ("pxe_initrd", &raw.pxe_initrd),
        ("pxe_script", &raw.pxe_script),
        ("pxe_files", &raw.pxe_files),
        ("pxe_cmdline", &raw.pxe_cmdline),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.as_ref().map(|v| (key, v)))
    .collect();
    if kind != Network::Pxe {
        if let Some((key, value)) = given.first() {
            return Err(cx.error(
                value.span(),
                format!(
                    "`{key}` needs `kind = \"pxe\"`, not `kind = \"{}\"`: it is part of what a \
                     PXE network serves",
                    kind.name()
                ),
            ));
        }
    }
    let pxe = if kind == Network::Pxe && !given.is_empty() {
        Some(pxe(cx, &raw)?)
    } else {
        None
    };
    Ok(NetworkDecl {
        name: net_name,
        kind,
        dhcp_router,
        dhcp_dns,
        capture,
        pxe,
        pos: cx.pos(name.span()),
    })
}

/// The `pxe_*` keys, by the rules of the attribute's: a kernel (with its initrd and command
/// line) or an iPXE script, not both.
fn pxe(cx: &Cx, raw: &RawNetwork) -> Result<PxeDecl> {
    if let (Some(initrd), None) = (&raw.pxe_initrd, &raw.pxe_kernel) {
        return Err(cx.error(
            initrd.span(),
            "`pxe_initrd` needs a `pxe_kernel`: it is the initrd that kernel boots with; add \
             `pxe_kernel`, or remove `pxe_initrd` (an iPXE script loads its own initrd: serve \
             it with `pxe_files`)",
        ));
    }
    if let (Some(_), Some(script)) = (&raw.pxe_kernel, &raw.pxe_script) {
        return Err(cx.error(
            script.span(),
            "`pxe_script` cannot be used with `pxe_kernel`: a PXE network serves either a \
             kernel (`pxe_kernel`, with `pxe_initrd` and `pxe_cmdline`) or an iPXE script that \
             loads its own; give one of them",
        ));
    }
    if let (Some(cmdline), Some(_)) = (&raw.pxe_cmdline, &raw.pxe_script) {
        return Err(cx.error(
            cmdline.span(),
            "`pxe_cmdline` cannot be used with `pxe_script`: the script sets the kernel \
             command line on its `kernel` line; put the arguments there",
        ));
    }
    let path = |key, value: &Option<Spanned<String>>, dir| {
        value
            .as_ref()
            .map(|v| cx.path(key, v, Some(dir)))
            .transpose()
    };
    Ok(PxeDecl {
        kernel: path("pxe_kernel", &raw.pxe_kernel, false)?,
        initrd: path("pxe_initrd", &raw.pxe_initrd, false)?,
        script: path("pxe_script", &raw.pxe_script, false)?,
        files: path("pxe_files", &raw.pxe_files, true)?,
        cmdline: raw.pxe_cmdline.as_ref().map(|c| cx.text(c)).transpose()?,
    })
}

// The file as written (see the note in the parent module).

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a network: a table")]
pub(super) struct RawNetwork {
    kind: Option<Spanned<String>>,
    dhcp_router: Option<Spanned<bool>>,
    dhcp_dns: Option<Spanned<bool>>,
    capture: Option<Spanned<bool>>,
    pxe_kernel: Option<Spanned<String>>,
    pxe_initrd: Option<Spanned<String>>,
    pxe_script: Option<Spanned<String>>,
    pxe_files: Option<Spanned<String>>,
    pxe_cmdline: Option<Spanned<String>>,
}
