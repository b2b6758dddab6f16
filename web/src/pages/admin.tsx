import { Page } from '../components/ui';
// Built in the next commits.
export function KeysPage(_props: Record<string, string>) { return <Page title="KeysPage"><p>Not built yet.</p></Page>; }
export function AuditPage(_props: Record<string, string>) { return <Page title="AuditPage"><p>Not built yet.</p></Page>; }
