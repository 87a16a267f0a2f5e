"""The Zoho CRM client and the access token that every function instance shares."""
