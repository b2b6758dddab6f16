import { Page } from '../components/ui';
// Being restored in the next commit.
export function familyName(f: string): string { return f; }
export function JobsPage(_props: Record<string, string>) { return <Page title="Jobs"><p>Not built yet.</p></Page>; }
export function JobPage(_props: Record<string, string>) { return <Page title="Job"><p>Not built yet.</p></Page>; }
