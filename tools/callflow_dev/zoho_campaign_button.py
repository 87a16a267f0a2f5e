"""Starting a campaign from inside Zoho CRM: a Deluge function behind a list-view button.

``callflow setup zoho`` prints it with the deployment's API URL and the module filled in. The
button sits in the module's list view (the mass-action menu); Zoho hands the function the ids of
the selected records, which it posts to ``POST /campaigns`` as an ``ids`` source. The API's
bearer token (the secret's ``status_api_token``) never appears in the function: Zoho adds it
from a connection (a custom service with API-key authentication in the ``Authorization``
header), or, with ``--token-from org-variable``, the function reads it from an org variable
that only administrators see.
"""

from __future__ import annotations

import re
from string import Template
from typing import Literal

TokenSource = Literal["connection", "org-variable"]
CONNECTION = "callflow"
"""The Zoho connection's name the function uses (``connection: "callflow"``)."""
ORG_VARIABLE = "callflow_api_token"

#: The list-view argument's merge field per module: what Zoho calls the record id there.
ID_FIELDS = {
    "Leads": "Lead Id",
    "Contacts": "Contact Id",
    "Deals": "Deal Id",
    "Accounts": "Account Id",
}

_FUNCTION = Template(
    """\
string button.$name(string recordIds)
{
// Zoho passes the selected records' ids separated by |||; the API takes them comma-separated.
ids = recordIds.replaceAll("|||", ",", true);
source = Map();
source.put("ids", ids);
body = Map();
body.put("module", "$module");
body.put("source", source);
body.put("name", "Zoho list view, " + zoho.loginuser + ", " + zoho.currenttime.toString());
headers = Map();
headers.put("Content-Type", "application/json");
${header_line}\
response = invokeurl
[
\turl: "$url"
\ttype: POST
\tparameters: body.toString()
\theaders: headers
\tdetailed: true
${connection_line}\
];
code = response.get("responseCode");
answer = response.get("responseText");
if(code == 202)
{
\tstarted = answer.toString().toMap();
\treturn "Campaign " + started.get("campaign_id") + " started for the selected records.";
}
// 401: the token is wrong; 422: refused, with the reason; 503: try again later.
return "callflow refused the campaign (" + code + "): " + answer;
}"""
)


def function_name(module: str) -> str:
    """``Leads`` -> ``callflowCampaignLeads``: Deluge function names are letters and digits."""
    return "callflowCampaign" + re.sub(r"[^A-Za-z0-9]", "", module)


def deluge_function(api_url: str, module: str, via: TokenSource = "connection") -> str:
    """The Deluge function, ready to paste: posts the selected ids and says what came back."""
    by_connection = via == "connection"
    org_variable = f'zoho.crm.getOrgVariable("{ORG_VARIABLE}")'
    return _FUNCTION.substitute(
        name=function_name(module),
        module=module,
        url=f"{api_url}/campaigns",
        header_line=""
        if by_connection
        else (f'headers.put("Authorization", "Bearer " + {org_variable});\n'),
        connection_line=f'\tconnection: "{CONNECTION}"\n' if by_connection else "",
    )


def install_steps(api_url: str, module: str, via: TokenSource = "connection") -> str:
    """How to install the function as a list-view button, step by step, with the function."""
    id_field = ID_FIELDS.get(module, "<the module's record id field>")
    if via == "connection":
        token_steps = [
            "1. Setup > Developer Hub > Connections > Create Connection > Custom Service:",
            "     Service Name: callflow; Authentication Type: API Key;",
            "     Parameter Key: Authorization; Parameter Type: Header.",
            f"   Connection Name: {CONNECTION}. Connect, and enter the value",
            "     Bearer <the secret's status_api_token>",
            "   (the token stays in the connection, never in the function).",
        ]
    else:
        token_steps = [
            "1. Setup > Developer Hub > Variables > Create: "
            f"API name {ORG_VARIABLE}, type Single Line,",
            "   value: the secret's status_api_token (only administrators see org variables).",
        ]
    lines = [
        f"Start a campaign from the {module} list view (a mass-action button)",
        *token_steps,
        f"2. Setup > Customization > Modules and Fields > {module} > Buttons > Create New Button:",
        "     Name: Call with callflow; Placement: List View - Mass Action Menu;",
        "     Action: Writing Function. Paste the function below, then Edit Arguments:",
        f"     recordIds = {module} - {id_field}. Save, and choose the profiles that may use it.",
        f"3. In the {module} list view, select records and click Call with callflow: the",
        "   message shows the campaign's id; follow it with `callflow campaign status <id>`",
        "   or GET /campaigns/<id>. For a whole custom view or a COQL query, start it with",
        "   `callflow campaign start --view <cvid>` (or --coql): no selection limit.",
        "",
        deluge_function(api_url, module, via),
    ]
    return "\n".join(lines)
