import { Page } from '../components/ui';
// Built in the next commits.
export function JobsPage(_props: Record<string, string>) { return <Page title="JobsPage"><p>Not built yet.</p></Page>; }
export function JobPage(_props: Record<string, string>) { return <Page title="JobPage"><p>Not built yet.</p></Page>; }
