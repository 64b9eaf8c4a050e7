"""Web domains as the account matcher compares them: the host of a website, URL or e-mail address,
the registrable domain ("shop.contoso.co.uk" → "contoso.co.uk"), its name ("contoso"), and the
tenant name of a Microsoft initial domain ("contoso.onmicrosoft.com" → "contoso")."""

from __future__ import annotations

import re

# Mail and hosting domains many unrelated customers share: equal, they say nothing.
SHARED_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "hotmail.co.uk",
        "live.com",
        "msn.com",
        "yahoo.com",
        "yahoo.co.uk",
        "icloud.com",
        "me.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "t-online.de",
        "orange.fr",
        "free.fr",
        "qq.com",
        "163.com",
        "mail.ru",
        "yandex.ru",
        "wixsite.com",
        "sharepoint.com",
        "azurewebsites.net",
        "github.io",
        "wordpress.com",
        "blogspot.com",
        "myshopify.com",
        "facebook.com",
        "linkedin.com",
    }
)
# Microsoft's initial domains: the first label is the tenant's name, chosen by the customer.
_TENANT_SUFFIXES = (".onmicrosoft.com", ".onmicrosoft.de", ".partner.onmschina.cn", ".onmschina.cn")
# Second-level labels under a country code that are not the name ("co" in contoso.co.uk).
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "ac", "gov", "edu", "ltd", "plc", "or", "ne", "go"})
_SECOND_LEVEL |= frozenset({"gob", "nic", "mil", "sch", "gen", "biz", "info", "firm", "nom", "asn", "id"})
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
_HOST = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$")


def host_of(value: str | None) -> str | None:
    """`https://www.contoso.com/about`, `admin@contoso.com` or `Contoso.com.` → `contoso.com`;
    None for nothing usable (no dot, spaces, an IP address)."""
    if not value:
        return None
    text = _SCHEME.sub("", value.strip().casefold())
    text = text.rsplit("@", 1)[-1].split("/")[0].split("?")[0].split("#")[0].split(":")[0].rstrip(".")
    text = text.removeprefix("www.")
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if not _HOST.match(text) or text.replace(".", "").isdigit():
        return None
    return text


def registrable(host: str) -> str:
    """The domain a company registers: the last two labels, three under "co.uk"-like suffixes."""
    labels = host.split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def name_label(host: str) -> str:
    """The name part of the registrable domain: "contoso" of "shop.contoso.co.uk"."""
    return registrable(host).split(".")[0]


def tenant_name(host: str) -> str | None:
    """ "contoso" of "contoso.onmicrosoft.com"; None for any other domain."""
    for suffix in _TENANT_SUFFIXES:
        if host.endswith(suffix):
            return host.removesuffix(suffix).split(".")[-1]
    return None


def is_shared(host: str) -> bool:
    """A mail or hosting domain unrelated customers share."""
    return registrable(host) in SHARED_DOMAINS or host in SHARED_DOMAINS


def search_label(value: str | None) -> str | None:
    """What to look for in the accounts' websites (`contains(websiteurl, '…')`): the domain's name
    ("contoso" of "https://www.contoso.co.uk", so contoso.com matches too), the tenant's name for a
    Microsoft initial domain; None for nothing usable or a shared mail domain (gmail.com would bring
    back every account with a Gmail address). Letters, digits and "-" only: safe in an OData literal."""
    host = host_of(value)
    if host is None:
        return None
    label = tenant_name(host) or (None if is_shared(host) else name_label(host))
    return label if label and len(label) >= 3 else None
